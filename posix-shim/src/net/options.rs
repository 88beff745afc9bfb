//! Socket options: `setsockopt`/`getsockopt` at `SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IP` and
//! `IPPROTO_IPV6`.
//!
//! What takes effect: `SO_RCVTIMEO`/`SO_SNDTIMEO` (blocking calls give `EAGAIN` when they
//! pass), `TCP_NODELAY`, `SO_KEEPALIVE` with `TCP_KEEPIDLE`/`TCP_KEEPINTVL` (smoltcp probes at
//! one interval: the idle time), `SO_ERROR`, `SO_TYPE`/`SO_DOMAIN`/`SO_PROTOCOL`/
//! `SO_ACCEPTCONN`, `SO_PEERCRED`. Recorded and reported back, with no effect here:
//! `SO_REUSEADDR` (libos-net never holds a port after close, so there is nothing to reuse),
//! `SO_REUSEPORT` (one socket per port), `SO_LINGER`, `SO_BROADCAST`, `TCP_KEEPCNT`,
//! `IPV6_V6ONLY`, `SO_RCVBUF`/`SO_SNDBUF` (libos-net's buffers are per stack: `tcp_buffer=`;
//! TCP connections report their real sizes), `IP_TOS`/`IPV6_TCLASS`, `TCP_QUICKACK`,
//! `TCP_DEFER_ACCEPT`, `TCP_CORK` (no corking: segments leave as with `TCP_NODELAY` off).
//! Any other option is `ENOPROTOOPT`, logged once per option.

use super::Socket;
use crate::sockaddr::{AF_INET, AF_INET6, AF_UNIX};
use libos::time::Duration;
use libos::{Errno, Result};

/// Socket-level options.
pub const SOL_SOCKET: u64 = 1;
/// IPv4 options.
pub const IPPROTO_IP: u64 = 0;
/// TCP options (and the TCP protocol number).
pub const IPPROTO_TCP: u64 = 6;
/// The UDP protocol number.
pub const IPPROTO_UDP: u64 = 17;
/// IPv6 options.
pub const IPPROTO_IPV6: u64 = 41;

const SO_DEBUG: u64 = 1;
const SO_REUSEADDR: u64 = 2;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;
const SO_DONTROUTE: u64 = 5;
const SO_BROADCAST: u64 = 6;
const SO_SNDBUF: u64 = 7;
const SO_RCVBUF: u64 = 8;
const SO_KEEPALIVE: u64 = 9;
const SO_OOBINLINE: u64 = 10;
const SO_LINGER: u64 = 13;
const SO_REUSEPORT: u64 = 15;
const SO_PEERCRED: u64 = 17;
const SO_RCVLOWAT: u64 = 18;
const SO_SNDLOWAT: u64 = 19;
const SO_RCVTIMEO: u64 = 20;
const SO_SNDTIMEO: u64 = 21;
const SO_ACCEPTCONN: u64 = 30;
const SO_PROTOCOL: u64 = 38;
const SO_DOMAIN: u64 = 39;
const SO_RCVBUFFORCE: u64 = 33;
const SO_SNDBUFFORCE: u64 = 32;

const TCP_NODELAY: u64 = 1;
const TCP_MAXSEG: u64 = 2;
const TCP_CORK: u64 = 3;
const TCP_KEEPIDLE: u64 = 4;
const TCP_KEEPINTVL: u64 = 5;
const TCP_KEEPCNT: u64 = 6;
const TCP_DEFER_ACCEPT: u64 = 9;
const TCP_QUICKACK: u64 = 12;

const IP_TOS: u64 = 1;
const IP_TTL: u64 = 2;
const IPV6_V6ONLY: u64 = 26;
const IPV6_TCLASS: u64 = 67;

/// A socket's options (shared by `dup`s, as the open socket is).
#[derive(Clone, Debug)]
pub struct Options {
    /// `SO_RCVTIMEO`.
    pub receive_timeout: Option<Duration>,
    /// `SO_SNDTIMEO`.
    pub send_timeout: Option<Duration>,
    /// `TCP_NODELAY`.
    pub no_delay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE` (seconds).
    pub keepalive_idle: u32,
    /// `TCP_KEEPINTVL` (seconds).
    pub keepalive_interval_s: u32,
    /// `TCP_KEEPCNT`.
    pub keepalive_count: u32,
    /// `SO_REUSEADDR`.
    pub reuse_address: bool,
    /// `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// `SO_BROADCAST`.
    pub broadcast: bool,
    /// `SO_LINGER`: `(l_onoff, l_linger)`.
    pub linger: (i32, i32),
    /// `SO_RCVBUF` as set.
    pub receive_buffer: u32,
    /// `SO_SNDBUF` as set.
    pub send_buffer: u32,
    /// `IPV6_V6ONLY`.
    pub v6_only: bool,
    /// `TCP_CORK`.
    pub cork: bool,
    /// `IP_TOS` / `IPV6_TCLASS`.
    pub tos: u32,
    /// `IP_TTL`.
    pub ttl: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            receive_timeout: None,
            send_timeout: None,
            no_delay: false,
            keepalive: false,
            keepalive_idle: 7200,
            keepalive_interval_s: 75,
            keepalive_count: 9,
            reuse_address: false,
            reuse_port: false,
            broadcast: false,
            linger: (0, 0),
            receive_buffer: 131_072,
            send_buffer: 131_072,
            v6_only: false,
            cork: false,
            tos: 0,
            ttl: 64,
        }
    }
}

impl Options {
    /// The keep-alive probe interval (smoltcp has one: the idle time before probing).
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.keepalive_idle.max(1)))
    }
}

fn int(value: &[u8]) -> Result<i32> {
    Ok(i32::from_ne_bytes(value.get(..4).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?))
}

fn timeval(value: &[u8]) -> Result<Option<Duration>> {
    let field = |at: usize| -> Result<i64> { Ok(i64::from_ne_bytes(value.get(at..at + 8).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?)) };
    let (sec, usec) = (field(0)?, field(8)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 {
        return Ok(Some(Duration::from_nanos(1))); // Linux: a negative timeout does not wait
    }
    let d = Duration::new(sec as u64, usec as u32 * 1000);
    Ok((!d.is_zero()).then_some(d))
}

fn timeval_bytes(value: Option<Duration>) -> alloc::vec::Vec<u8> {
    let d = value.unwrap_or(Duration::ZERO);
    let mut out = (d.as_secs() as i64).to_ne_bytes().to_vec();
    out.extend_from_slice(&i64::from(d.subsec_micros()).to_ne_bytes());
    out
}

fn unsupported(level: u64, name: u64) -> Errno {
    crate::dispatch::log_refused("socket option (level << 16 | name)", (level << 16) | name, Errno::ENOPROTOOPT);
    Errno::ENOPROTOOPT
}

/// `setsockopt(level, name, value)`.
pub fn set(socket: &Socket, level: u64, name: u64, value: &[u8]) -> Result<()> {
    let tcp = socket.is_inet() && socket.is_stream();
    {
        let mut o = socket.options.lock();
        match (level, name) {
            (SOL_SOCKET, SO_RCVTIMEO) => o.receive_timeout = timeval(value)?,
            (SOL_SOCKET, SO_SNDTIMEO) => o.send_timeout = timeval(value)?,
            (SOL_SOCKET, SO_REUSEADDR) => o.reuse_address = int(value)? != 0,
            (SOL_SOCKET, SO_REUSEPORT) => o.reuse_port = int(value)? != 0,
            (SOL_SOCKET, SO_KEEPALIVE) => o.keepalive = int(value)? != 0,
            (SOL_SOCKET, SO_BROADCAST) => o.broadcast = int(value)? != 0,
            (SOL_SOCKET, SO_RCVBUF | SO_RCVBUFFORCE) => o.receive_buffer = int(value)?.max(1152) as u32,
            (SOL_SOCKET, SO_SNDBUF | SO_SNDBUFFORCE) => o.send_buffer = int(value)?.max(2304) as u32,
            (SOL_SOCKET, SO_LINGER) => o.linger = (int(value)?, int(value.get(4..).ok_or(Errno::EINVAL)?)?),
            (SOL_SOCKET, SO_DEBUG | SO_DONTROUTE | SO_OOBINLINE | SO_RCVLOWAT | SO_SNDLOWAT) => {
                int(value)?;
            }
            (IPPROTO_TCP, _) if !tcp => return Err(Errno::EOPNOTSUPP),
            (IPPROTO_TCP, TCP_NODELAY) => o.no_delay = int(value)? != 0,
            (IPPROTO_TCP, TCP_CORK) => o.cork = int(value)? != 0,
            (IPPROTO_TCP, TCP_KEEPIDLE) => o.keepalive_idle = positive(int(value)?, 32767)?,
            (IPPROTO_TCP, TCP_KEEPINTVL) => o.keepalive_interval_s = positive(int(value)?, 32767)?,
            (IPPROTO_TCP, TCP_KEEPCNT) => o.keepalive_count = positive(int(value)?, 127)?,
            (IPPROTO_TCP, TCP_QUICKACK | TCP_DEFER_ACCEPT | TCP_MAXSEG) => {
                int(value)?;
            }
            (IPPROTO_IP, IP_TOS) if socket.family() == AF_INET => o.tos = int(value)? as u32 & 0xff,
            (IPPROTO_IP, IP_TTL) if socket.family() == AF_INET => o.ttl = positive(int(value)?, 255)?,
            (IPPROTO_IPV6, IPV6_V6ONLY) if socket.family() == AF_INET6 => o.v6_only = int(value)? != 0,
            (IPPROTO_IPV6, IPV6_TCLASS) if socket.family() == AF_INET6 => o.tos = int(value)? as u32 & 0xff,
            _ => return Err(unsupported(level, name)),
        }
    }
    socket.apply_options()
}

fn positive(value: i32, max: i32) -> Result<u32> {
    if (1..=max).contains(&value) { Ok(value as u32) } else { Err(Errno::EINVAL) }
}

/// `getsockopt(level, name)`: the value's bytes.
pub fn get(socket: &Socket, level: u64, name: u64) -> Result<alloc::vec::Vec<u8>> {
    let int = |v: i64| (v as i32).to_ne_bytes().to_vec();
    let o = socket.options.lock().clone();
    let tcp = socket.is_inet() && socket.is_stream();
    Ok(match (level, name) {
        (SOL_SOCKET, SO_TYPE) => int(if socket.is_stream() { 1 } else { 2 }),
        (SOL_SOCKET, SO_DOMAIN) => int(i64::from(socket.family())),
        (SOL_SOCKET, SO_PROTOCOL) => int(match (socket.family(), socket.is_stream()) {
            (AF_UNIX, _) => 0,
            (_, true) => IPPROTO_TCP as i64,
            (_, false) => IPPROTO_UDP as i64,
        }),
        (SOL_SOCKET, SO_ERROR) => int(socket.take_error().map_or(0, |e| e as i64)),
        (SOL_SOCKET, SO_ACCEPTCONN) => int(i64::from(socket.is_listening())),
        (SOL_SOCKET, SO_RCVTIMEO) => timeval_bytes(o.receive_timeout),
        (SOL_SOCKET, SO_SNDTIMEO) => timeval_bytes(o.send_timeout),
        (SOL_SOCKET, SO_REUSEADDR) => int(i64::from(o.reuse_address)),
        (SOL_SOCKET, SO_REUSEPORT) => int(i64::from(o.reuse_port)),
        (SOL_SOCKET, SO_KEEPALIVE) => int(i64::from(o.keepalive)),
        (SOL_SOCKET, SO_BROADCAST) => int(i64::from(o.broadcast)),
        // Linux doubles what was asked for (bookkeeping overhead); a TCP connection reports
        // what it really has.
        (SOL_SOCKET, SO_RCVBUF) => int(socket.buffer_sizes().map_or(i64::from(o.receive_buffer) * 2, |(r, _)| r as i64)),
        (SOL_SOCKET, SO_SNDBUF) => int(socket.buffer_sizes().map_or(i64::from(o.send_buffer) * 2, |(_, s)| s as i64)),
        (SOL_SOCKET, SO_LINGER) => [o.linger.0.to_ne_bytes(), o.linger.1.to_ne_bytes()].concat(),
        (SOL_SOCKET, SO_RCVLOWAT | SO_SNDLOWAT) => int(1),
        (SOL_SOCKET, SO_DEBUG | SO_DONTROUTE | SO_OOBINLINE) => int(0),
        // struct ucred: the one process, as root.
        (SOL_SOCKET, SO_PEERCRED) if socket.family() == AF_UNIX => [(crate::process::pid() as i32).to_ne_bytes(), [0; 4], [0; 4]].concat(),
        (IPPROTO_TCP, _) if !tcp => return Err(Errno::EOPNOTSUPP),
        (IPPROTO_TCP, TCP_NODELAY) => int(i64::from(o.no_delay)),
        (IPPROTO_TCP, TCP_CORK) => int(i64::from(o.cork)),
        (IPPROTO_TCP, TCP_KEEPIDLE) => int(i64::from(o.keepalive_idle)),
        (IPPROTO_TCP, TCP_KEEPINTVL) => int(i64::from(o.keepalive_interval_s)),
        (IPPROTO_TCP, TCP_KEEPCNT) => int(i64::from(o.keepalive_count)),
        (IPPROTO_TCP, TCP_MAXSEG) => int(1460),
        (IPPROTO_TCP, TCP_QUICKACK) => int(1),
        (IPPROTO_TCP, TCP_DEFER_ACCEPT) => int(0),
        (IPPROTO_IP, IP_TOS) if socket.family() == AF_INET => int(i64::from(o.tos)),
        (IPPROTO_IP, IP_TTL) if socket.family() == AF_INET => int(i64::from(o.ttl)),
        (IPPROTO_IPV6, IPV6_V6ONLY) if socket.family() == AF_INET6 => int(i64::from(o.v6_only)),
        (IPPROTO_IPV6, IPV6_TCLASS) if socket.family() == AF_INET6 => int(i64::from(o.tos)),
        _ => return Err(unsupported(level, name)),
    })
}
