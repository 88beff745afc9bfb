//! Sockets: the socket system calls over `AF_UNIX` sockets inside the image ([`unix`]) and,
//! with the `net` feature, `AF_INET`/`AF_INET6` TCP and UDP over `libos::net` ([`inet`]).
//!
//! A [`Socket`] is a descriptor object ([`crate::fd::Object::Socket`]): `read`, `write`,
//! `readv`, `writev`, `close`, `poll`/`select`/`epoll` (the network stack reports changes
//! through [`install_hooks`]), `fcntl(O_NONBLOCK)`, `ioctl(FIONREAD, FIONBIO)` work on it as
//! on any descriptor. The calls here take the C structures apart ([`crate::sockaddr`] for the
//! addresses, `struct msghdr` and its iovecs for `sendmsg`/`recvmsg`) and map Linux's flags:
//! `MSG_PEEK`, `MSG_DONTWAIT`, `MSG_NOSIGNAL` (no `SIGPIPE` for a broken connection),
//! `MSG_WAITALL`, `MSG_TRUNC`. Options are in [`options`].
//!
//! Not done: ancillary data (`SCM_RIGHTS` descriptor passing, `IP_PKTINFO`: a `sendmsg` with
//! a control buffer fails with `EOPNOTSUPP`, logged once; `recvmsg` returns none), out-of-band
//! data (`MSG_OOB`: `EOPNOTSUPP`), raw and packet sockets (`socket` fails with
//! `ESOCKTNOSUPPORT`/`EAFNOSUPPORT`), `SOCK_SEQPACKET`.

#[cfg(feature = "net")]
pub mod inet;
mod msg;
pub mod options;
pub mod unix;
mod unix_names;

pub use msg::{recvfrom, recvmmsg, recvmsg, sendmmsg, sendmsg, sendto};

use crate::fd::{self, Object};
use crate::sockaddr::{self, AF_INET, AF_INET6, AF_UNIX, SockAddr};
use crate::user;
use libos::sync::Mutex;
use libos::{Errno, Result};
pub use options::Options;

const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;

const MSG_OOB: u64 = 0x1;
const MSG_PEEK: u64 = 0x2;
const MSG_CTRUNC: u64 = 0x8;
const MSG_TRUNC: u64 = 0x20;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_WAITALL: u64 = 0x100;
const MSG_NOSIGNAL: u64 = 0x4000;
const MSG_WAITFORONE: u64 = 0x10000;

/// The flags of one send or receive call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgFlags {
    /// `MSG_PEEK`: leave the data queued.
    pub peek: bool,
    /// `MSG_DONTWAIT`: `EAGAIN` instead of waiting.
    pub dont_wait: bool,
    /// `MSG_NOSIGNAL`: no `SIGPIPE` on a broken connection.
    pub no_signal: bool,
    /// `MSG_WAITALL`: a stream receive waits for the whole buffer.
    pub wait_all: bool,
    /// `MSG_TRUNC` on receive: return a datagram's real length.
    pub real_length: bool,
}

impl MsgFlags {
    fn from_bits(bits: u64) -> Result<MsgFlags> {
        if bits & MSG_OOB != 0 {
            crate::dispatch::log_refused("socket flag MSG_OOB", MSG_OOB, Errno::EOPNOTSUPP);
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(MsgFlags {
            peek: bits & MSG_PEEK != 0,
            dont_wait: bits & MSG_DONTWAIT != 0,
            no_signal: bits & MSG_NOSIGNAL != 0,
            wait_all: bits & MSG_WAITALL != 0,
            real_length: bits & MSG_TRUNC != 0,
        })
    }
}

/// What one receive got.
pub struct Received {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The datagram's whole length (more than `len` when it was truncated).
    pub full_len: usize,
    /// The sender (datagram sockets).
    pub from: Option<SockAddr>,
}

enum Kind {
    Unix(unix::UnixSocket),
    #[cfg(feature = "net")]
    Inet(inet::InetSocket),
}

/// A socket descriptor's object.
pub struct Socket {
    kind: Kind,
    options: Mutex<Options>,
}

impl Socket {
    fn new(kind: Kind) -> Socket {
        Socket { kind, options: Mutex::new(Options::default()) }
    }

    fn options(&self) -> Options {
        self.options.lock().clone()
    }

    /// `AF_UNIX`, `AF_INET` or `AF_INET6`.
    pub fn family(&self) -> u16 {
        match &self.kind {
            Kind::Unix(_) => AF_UNIX,
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.family(),
        }
    }

    /// Whether it is a stream socket.
    pub fn is_stream(&self) -> bool {
        match &self.kind {
            Kind::Unix(s) => s.is_stream(),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.is_stream(),
        }
    }

    /// Whether it is `AF_INET`/`AF_INET6`.
    pub fn is_inet(&self) -> bool {
        self.family() != AF_UNIX
    }

    /// `SO_ACCEPTCONN`.
    pub fn is_listening(&self) -> bool {
        match &self.kind {
            Kind::Unix(s) => s.is_listening(),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.is_listening(),
        }
    }

    /// `SO_ERROR`: the pending error, cleared.
    pub fn take_error(&self) -> Option<Errno> {
        match &self.kind {
            Kind::Unix(_) => None,
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.take_error(),
        }
    }

    /// A TCP connection's real buffer sizes.
    pub fn buffer_sizes(&self) -> Option<(usize, usize)> {
        match &self.kind {
            Kind::Unix(_) => Some((crate::events::PIPE_CAPACITY, crate::events::PIPE_CAPACITY)),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.buffer_sizes(),
        }
    }

    fn apply_options(&self) -> Result<()> {
        match &self.kind {
            Kind::Unix(_) => Ok(()),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.apply(&self.options()),
        }
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        match &self.kind {
            Kind::Unix(s) => s.set_nonblocking(on),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.set_nonblocking(on),
        }
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        match &self.kind {
            Kind::Unix(s) => s.is_nonblocking(),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.is_nonblocking(),
        }
    }

    /// `poll` bits.
    pub fn ready(&self) -> i16 {
        match &self.kind {
            Kind::Unix(s) => s.ready(),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.ready(),
        }
    }

    /// How many times it changed (edge-triggered epoll).
    pub fn changes(&self) -> u64 {
        match &self.kind {
            Kind::Unix(s) => s.changes(),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.changes(),
        }
    }

    /// `FIONREAD`.
    pub fn available(&self) -> Result<usize> {
        match &self.kind {
            Kind::Unix(s) => Ok(s.available()),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.available(),
        }
    }

    /// `read` on the socket: `recv` without flags.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.receive(buf, MsgFlags::default()).map(|r| r.len)
    }

    /// `write` on the socket: `send` without flags.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.send(buf, None, MsgFlags::default())
    }

    fn send(&self, data: &[u8], to: Option<SockAddr>, flags: MsgFlags) -> Result<usize> {
        let options = self.options();
        match &self.kind {
            Kind::Unix(s) => {
                let to = match to {
                    Some(SockAddr::Unix(name)) if !s.is_stream() => Some(name),
                    Some(SockAddr::Unix(_)) => return Err(Errno::EISCONN),
                    Some(_) => return Err(Errno::EINVAL),
                    None => None,
                };
                s.send(data, to, flags, &options)
            }
            #[cfg(feature = "net")]
            Kind::Inet(s) => {
                let to = match to {
                    Some(SockAddr::Inet(addr)) => Some(addr),
                    Some(_) if s.is_stream() => None, // TCP ignores a destination
                    Some(_) => return Err(Errno::EAFNOSUPPORT),
                    None => None,
                };
                s.send(data, to, flags, &options).map_err(|e| restartable(e, options.send_timeout))
            }
        }
    }

    /// Sends the concatenation of `parts` on a stream socket (`writev`, `sendmsg`): TCP queues
    /// them together (one segment where one buffer would give one); `AF_UNIX` writes them in
    /// turn.
    fn send_stream(&self, parts: &[&[u8]], flags: MsgFlags) -> Result<usize> {
        #[cfg(feature = "net")]
        if let Kind::Inet(s) = &self.kind {
            let timeout = self.options.lock().send_timeout;
            return s.send_stream(parts, flags).map_err(|e| restartable(e, timeout));
        }
        let mut total = 0;
        for part in parts {
            match self.send(part, None, flags) {
                Ok(n) => {
                    total += n;
                    if n < part.len() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    /// One receive into `buf`; with `MSG_WAITALL` on a stream, until `buf` is full, the
    /// stream ends, or an error or signal (what arrived so far is the result then).
    fn receive(&self, buf: &mut [u8], flags: MsgFlags) -> Result<Received> {
        let options = self.options();
        let once = |buf: &mut [u8]| match &self.kind {
            Kind::Unix(s) => s.receive(buf, flags, &options),
            #[cfg(feature = "net")]
            Kind::Inet(s) => s.receive(buf, flags, &options).map_err(|e| restartable(e, options.receive_timeout)),
        };
        let mut first = once(buf)?;
        if !(flags.wait_all && self.is_stream() && !flags.peek && !flags.dont_wait) {
            return Ok(first);
        }
        while first.len < buf.len() && first.len > 0 {
            match once(&mut buf[first.len..]) {
                Ok(r) if r.len > 0 => first.len += r.len,
                _ => break,
            }
        }
        first.full_len = first.len;
        Ok(first)
    }
}

/// libos-net ends a wait with `EINTR` when a signal arrives; Linux restarts socket calls
/// interrupted by an `SA_RESTART` handler unless the socket has a timeout for that direction
/// (`man 7 signal`), so without one the shim's restart marker goes up instead.
#[cfg(feature = "net")]
fn restartable(error: Errno, timeout: Option<libos::time::Duration>) -> Errno {
    if error == Errno::EINTR && timeout.is_none() { Errno::ERESTARTSYS } else { error }
}

/// `writev` on a socket: `sendmsg` without an address or flags.
pub fn writev(socket: &Socket, iov: u64, count: u64) -> Result<u64> {
    if count > user::IOV_MAX {
        return Err(Errno::EINVAL); // (sendmsg says EMSGSIZE)
    }
    let parts = msg::buffers(iov, count)?;
    msg::send_parts(socket, &parts, None, MsgFlags::default()).map(|n| n as u64)
}

/// Connects the network stack to the shim's signals and readiness (program start).
pub fn install_hooks() {
    #[cfg(feature = "net")]
    libos::net::set_signal_hooks(crate::signal::has_pending_for_current, crate::events::changed);
}

fn socket_of(fd_number: u64) -> Result<alloc::sync::Arc<Object>> {
    let object = fd::get(fd_number)?;
    object.socket()?;
    Ok(object)
}

fn kind_and_flags(type_and_flags: u64) -> Result<(u64, bool, bool)> {
    if type_and_flags & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((type_and_flags & 0xf, type_and_flags & SOCK_NONBLOCK != 0, type_and_flags & SOCK_CLOEXEC != 0))
}

fn new_socket(domain: u64, kind: u64, protocol: u64, nonblocking: bool) -> Result<Socket> {
    let stream = match kind {
        SOCK_STREAM => true,
        SOCK_DGRAM => false,
        other => {
            crate::dispatch::log_refused("socket type", other, Errno::ESOCKTNOSUPPORT);
            return Err(Errno::ESOCKTNOSUPPORT);
        }
    };
    match domain as u16 {
        AF_UNIX => {
            if protocol != 0 {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(Socket::new(Kind::Unix(unix::UnixSocket::new(stream, nonblocking))))
        }
        AF_INET | AF_INET6 => {
            let expected = if stream { options::IPPROTO_TCP } else { options::IPPROTO_UDP };
            if protocol != 0 && protocol != expected {
                return Err(Errno::EPROTONOSUPPORT);
            }
            #[cfg(feature = "net")]
            return Ok(Socket::new(Kind::Inet(inet::InetSocket::new(domain as u16, stream, nonblocking))));
            #[cfg(not(feature = "net"))]
            {
                crate::dispatch::log_refused("address family (the image has no network stack: posix-shim feature `net`)", domain, Errno::EAFNOSUPPORT);
                Err(Errno::EAFNOSUPPORT)
            }
        }
        _ => {
            crate::dispatch::log_refused("address family", domain, Errno::EAFNOSUPPORT);
            Err(Errno::EAFNOSUPPORT)
        }
    }
}

/// `socket(domain, type, protocol)`.
pub fn socket(domain: u64, type_and_flags: u64, protocol: u64) -> Result<u64> {
    let (kind, nonblocking, cloexec) = kind_and_flags(type_and_flags)?;
    let socket = new_socket(domain, kind, protocol, nonblocking)?;
    fd::insert(Object::Socket(socket), cloexec)
}

/// `socketpair(domain, type, protocol, sv)`: `AF_UNIX` only (`EOPNOTSUPP` for the Internet
/// families, as Linux).
pub fn socketpair(domain: u64, type_and_flags: u64, protocol: u64, sv: u64) -> Result<u64> {
    let (kind, nonblocking, cloexec) = kind_and_flags(type_and_flags)?;
    match domain as u16 {
        AF_UNIX => {}
        AF_INET | AF_INET6 => return Err(Errno::EOPNOTSUPP),
        _ => return Err(Errno::EAFNOSUPPORT),
    }
    if protocol != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let stream = match kind {
        SOCK_STREAM => true,
        SOCK_DGRAM => false,
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    user::check_access(sv, 8, libos::hal::Access::Write)?;
    let (a, b) = unix::UnixSocket::pair(stream, nonblocking);
    let (a, b) = fd::insert_pair(Object::Socket(Socket::new(Kind::Unix(a))), Object::Socket(Socket::new(Kind::Unix(b))), cloexec)?;
    // SAFETY: checked above; the C program passed `int sv[2]`.
    unsafe { user::write(sv, [a as i32, b as i32])? };
    Ok(0)
}

/// Reads the `sockaddr` of `len` bytes at `addr` for `socket`.
fn read_addr(socket: &Socket, addr: u64, len: u64) -> Result<SockAddr> {
    if len as i32 as i64 != len as i64 || (len as i32) < 0 || len > 128 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: checked by `user::slice`; read only.
    let bytes = unsafe { user::slice(addr, len)? };
    sockaddr::parse(bytes, socket.family())
}

/// Writes `value` to the `sockaddr` buffer `addr` whose length is at `len_ptr` (in: the
/// buffer's size; out: the address's full length), truncating as Linux does.
fn write_addr(addr: u64, len_ptr: u64, value: &SockAddr, family: u16) -> Result<()> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    // SAFETY: checked by `user::read`.
    let room: i32 = unsafe { user::read(len_ptr)? };
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let bytes = sockaddr::encode(value, family);
    let n = bytes.len().min(room as usize);
    // SAFETY: checked by `user::slice_mut`: the caller's buffer of `room` bytes.
    unsafe { user::slice_mut(addr, n as u64)? }.copy_from_slice(&bytes[..n]);
    // SAFETY: checked by `user::write`.
    unsafe { user::write(len_ptr, bytes.len() as u32)? };
    Ok(())
}

/// `bind(fd, addr, len)`.
pub fn bind(fd_number: u64, addr: u64, len: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let address = read_addr(socket, addr, len)?;
    match (&socket.kind, address) {
        (Kind::Unix(s), SockAddr::Unix(name)) => s.bind(name)?,
        #[cfg(feature = "net")]
        (Kind::Inet(s), SockAddr::Inet(a)) => s.bind(a, &socket.options())?,
        #[cfg(feature = "net")]
        (Kind::Inet(s), SockAddr::Unspec) if s.family() == AF_INET => s.bind(sockaddr::unspecified(AF_INET, 0), &socket.options())?,
        _ => return Err(Errno::EAFNOSUPPORT),
    }
    Ok(0)
}

/// `listen(fd, backlog)`.
pub fn listen(fd_number: u64, backlog: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    // Linux clamps the backlog into 0..=SOMAXCONN (4096); a negative one means the maximum.
    let backlog = match backlog as i32 {
        b if b < 0 => 4096,
        b => (b as usize).min(4096),
    };
    match &object.socket()?.kind {
        Kind::Unix(s) => s.listen(backlog)?,
        #[cfg(feature = "net")]
        Kind::Inet(s) => s.listen(backlog)?,
    }
    Ok(0)
}

/// `accept4(fd, addr, addrlen, flags)` (and `accept`, flags 0).
pub fn accept4(fd_number: u64, addr: u64, len_ptr: u64, flags: u64) -> Result<u64> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    if !socket.is_stream() {
        return Err(Errno::EOPNOTSUPP);
    }
    let nonblocking = flags & SOCK_NONBLOCK != 0;
    let options = socket.options();
    let (accepted, peer) = match &socket.kind {
        Kind::Unix(s) => {
            let (accepted, peer) = s.accept(&options)?;
            accepted.set_nonblocking(nonblocking);
            (Kind::Unix(accepted), peer)
        }
        #[cfg(feature = "net")]
        Kind::Inet(s) => {
            let (accepted, peer) = s.accept(&options, nonblocking).map_err(|e| restartable(e, options.receive_timeout))?;
            (Kind::Inet(accepted), peer)
        }
    };
    // The new socket inherits the listener's options (as Linux copies them to the child).
    let accepted = Socket { kind: accepted, options: Mutex::new(options) };
    let family = accepted.family();
    let number = fd::insert(Object::Socket(accepted), flags & SOCK_CLOEXEC != 0)?;
    if let Err(e) = write_addr(addr, len_ptr, &peer, family) {
        let _ = fd::close(number);
        return Err(e);
    }
    Ok(number)
}

/// `connect(fd, addr, len)`.
pub fn connect(fd_number: u64, addr: u64, len: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let address = read_addr(socket, addr, len)?;
    let options = socket.options();
    match (&socket.kind, address) {
        (Kind::Unix(s), SockAddr::Unix(name)) => s.connect(name, &options)?,
        (Kind::Unix(_), _) => return Err(Errno::EAFNOSUPPORT),
        #[cfg(feature = "net")]
        (Kind::Inet(s), address) => s.connect(address, &options).map_err(|e| restartable(e, options.send_timeout))?,
    }
    Ok(0)
}

/// `shutdown(fd, how)`.
pub fn shutdown(fd_number: u64, how: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let (read, write) = match how {
        0 => (true, false),
        1 => (false, true),
        2 => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    match &object.socket()?.kind {
        Kind::Unix(s) => s.shutdown(read, write)?,
        #[cfg(feature = "net")]
        Kind::Inet(s) => s.shutdown(read, write)?,
    }
    Ok(0)
}

/// `getsockname(fd, addr, addrlen)`.
pub fn getsockname(fd_number: u64, addr: u64, len_ptr: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let name = match &socket.kind {
        Kind::Unix(s) => s.local_name(),
        #[cfg(feature = "net")]
        Kind::Inet(s) => s.local_name()?,
    };
    user::check_access(addr, 1, libos::hal::Access::Write)?;
    write_addr(addr, len_ptr, &name, socket.family())?;
    Ok(0)
}

/// `getpeername(fd, addr, addrlen)`.
pub fn getpeername(fd_number: u64, addr: u64, len_ptr: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    let socket = object.socket()?;
    let name = match &socket.kind {
        Kind::Unix(s) => s.peer_name()?,
        #[cfg(feature = "net")]
        Kind::Inet(s) => s.peer_name()?,
    };
    user::check_access(addr, 1, libos::hal::Access::Write)?;
    write_addr(addr, len_ptr, &name, socket.family())?;
    Ok(0)
}

/// `setsockopt(fd, level, name, value, len)`.
pub fn setsockopt(fd_number: u64, level: u64, name: u64, value: u64, len: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    if (len as i32) < 0 || len > 256 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: checked by `user::slice`; read only.
    let bytes = unsafe { user::slice(value, len)? };
    options::set(object.socket()?, level, name, bytes)?;
    Ok(0)
}

/// `getsockopt(fd, level, name, value, len)`.
pub fn getsockopt(fd_number: u64, level: u64, name: u64, value: u64, len_ptr: u64) -> Result<u64> {
    let object = socket_of(fd_number)?;
    // SAFETY: checked by `user::read`.
    let room: i32 = unsafe { user::read(len_ptr)? };
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let bytes = options::get(object.socket()?, level, name)?;
    let n = bytes.len().min(room as usize);
    // SAFETY: checked by `user::slice_mut`: the caller's buffer of `room` bytes.
    unsafe { user::slice_mut(value, n as u64)? }.copy_from_slice(&bytes[..n]);
    // SAFETY: checked by `user::write`.
    unsafe { user::write(len_ptr, n as u32)? };
    Ok(0)
}

/// `sendfile(out_fd, in_fd, offset, count)`: copies from a file to any descriptor (a socket,
/// a pipe, another file) through one kernel buffer, from `*offset` (left in place, `*offset`
/// advanced) or from the file's offset (advanced).
#[cfg(feature = "fs")]
pub fn sendfile(out_fd: u64, in_fd: u64, offset_ptr: u64, count: u64) -> Result<u64> {
    let input = fd::get(in_fd)?;
    let Object::File(file) = &*input else { return Err(Errno::EINVAL) };
    let output = fd::get(out_fd)?;
    if offset_ptr == 0 {
        // The file's own offset, which a fork may share with other processes.
        return crate::shared_offset::around(&input, file, || send_from_file(file, &output, 0, count));
    }
    send_from_file(file, &output, offset_ptr, count)
}

/// [`sendfile`] from `file` to `output`.
#[cfg(feature = "fs")]
fn send_from_file(file: &libos::fs::vfs::OpenFile, output: &Object, offset_ptr: u64, count: u64) -> Result<u64> {
    const CHUNK: usize = 64 * 1024;
    let mut offset = if offset_ptr == 0 {
        file.position()
    } else {
        // SAFETY: checked by `user::read`.
        let start: i64 = unsafe { user::read(offset_ptr)? };
        u64::try_from(start).map_err(|_| Errno::EINVAL)?
    };
    let count = count.min(0x7fff_f000) as usize; // Linux's MAX_RW_COUNT
    let mut buf = alloc::vec![0u8; count.min(CHUNK)];
    let mut total = 0usize;
    let mut failure = None;
    'copy: while total < count {
        let want = buf.len().min(count - total);
        let n = match file.read_at(offset, &mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let mut written = 0;
        while written < n {
            match output.write(&buf[written..n]) {
                Ok(0) => break 'copy,
                Ok(w) => {
                    written += w;
                    total += w;
                    offset += w as u64;
                }
                Err(e) => {
                    failure = Some(e);
                    break 'copy;
                }
            }
        }
    }
    if offset_ptr == 0 {
        file.seek(libos::fs::vfs::SeekFrom::Start(offset))?;
    } else {
        // SAFETY: checked by `user::write`.
        unsafe { user::write(offset_ptr, offset as i64)? };
    }
    match failure {
        Some(e) if total == 0 => Err(e),
        _ => Ok(total as u64),
    }
}
