//! Socket addresses as C passes them: `struct sockaddr_in`, `sockaddr_in6` and `sockaddr_un`
//! in and out of system calls, with Linux's length rules (pure; host-tested).
//!
//! - In (`bind`, `connect`, `sendto`): [`parse`] checks the length for the family (`EINVAL`
//!   when short), the family against the socket's (`EAFNOSUPPORT`), and reads the fields.
//! - Out (`accept`, `getsockname`, `recvfrom`): [`encode`] builds the bytes; the caller copies
//!   at most the buffer's length and reports the full length, as Linux does (a short buffer
//!   truncates the address, it is not an error).
//!
//! An `AF_INET6` socket talks IPv4 through IPv4-mapped addresses (`::ffff:a.b.c.d`), as Linux
//! does without `IPV6_V6ONLY`: [`parse`] unmaps them and [`encode`] maps IPv4 peers back.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use libos::{Errno, Result};

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u16 = 0;
/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// `sizeof(struct sockaddr_in)`.
pub const INET_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub const INET6_LEN: usize = 28;
/// The shortest `sockaddr_in6` Linux takes (RFC 2133's, without `sin6_scope_id`).
const INET6_MIN_LEN: usize = 24;
/// `offsetof(struct sockaddr_un, sun_path)`.
const UN_PATH_OFFSET: usize = 2;
/// `sizeof(struct sockaddr_un)`.
pub const UN_LEN: usize = UN_PATH_OFFSET + 108;

/// The name of an `AF_UNIX` socket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixName {
    /// Not bound (or `bind` with only the family: autobind).
    Unnamed,
    /// A path name (without the terminating NUL).
    Path(Vec<u8>),
    /// An abstract name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// An address of any family the shim knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    /// `AF_UNSPEC` (`connect` with it dissolves a datagram socket's association).
    Unspec,
    /// `AF_INET` / `AF_INET6`.
    Inet(SocketAddr),
    /// `AF_UNIX`.
    Unix(UnixName),
}

/// Reads the address of `bytes` for a socket of family `family`.
/// Errors: `EINVAL` for a length too short for the family (or over `sockaddr_un`'s),
/// `EAFNOSUPPORT` for a family other than the socket's.
pub fn parse(bytes: &[u8], family: u16) -> Result<SockAddr> {
    let found = u16::from_ne_bytes(bytes.get(..2).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?);
    if found == AF_UNSPEC && family != AF_UNIX {
        return Ok(SockAddr::Unspec);
    }
    match (family, found) {
        (AF_INET, AF_INET) => {
            if bytes.len() < INET_LEN {
                return Err(Errno::EINVAL);
            }
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Ok(SockAddr::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        (AF_INET6, AF_INET6) => {
            if bytes.len() < INET6_MIN_LEN {
                return Err(Errno::EINVAL);
            }
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let flowinfo = u32::from_be_bytes(bytes[4..8].try_into().map_err(|_| Errno::EINVAL)?);
            let octets: [u8; 16] = bytes[8..24].try_into().map_err(|_| Errno::EINVAL)?;
            let scope = bytes.get(24..28).map_or(0, |s| u32::from_ne_bytes(s.try_into().unwrap_or_default()));
            let ip = Ipv6Addr::from(octets);
            Ok(SockAddr::Inet(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope)),
            }))
        }
        (AF_UNIX, AF_UNIX) => {
            if bytes.len() > UN_LEN {
                return Err(Errno::EINVAL);
            }
            let path = &bytes[UN_PATH_OFFSET..];
            Ok(SockAddr::Unix(match path.first() {
                None => UnixName::Unnamed,
                Some(0) => UnixName::Abstract(path[1..].to_vec()),
                Some(_) => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    UnixName::Path(path[..end].to_vec())
                }
            }))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// The bytes of `addr` as a socket of family `family` reports it (IPv4 addresses mapped into
/// IPv6 for an `AF_INET6` socket).
pub fn encode(addr: &SockAddr, family: u16) -> Vec<u8> {
    match addr {
        SockAddr::Unspec => AF_UNSPEC.to_ne_bytes().to_vec(),
        SockAddr::Inet(SocketAddr::V4(v4)) if family != AF_INET6 => {
            let mut out = alloc::vec![0u8; INET_LEN];
            out[..2].copy_from_slice(&AF_INET.to_ne_bytes());
            out[2..4].copy_from_slice(&v4.port().to_be_bytes());
            out[4..8].copy_from_slice(&v4.ip().octets());
            out
        }
        SockAddr::Inet(addr) => {
            let (ip, port, flowinfo, scope) = match addr {
                SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
                SocketAddr::V6(v6) => (*v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id()),
            };
            let mut out = alloc::vec![0u8; INET6_LEN];
            out[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
            out[2..4].copy_from_slice(&port.to_be_bytes());
            out[4..8].copy_from_slice(&flowinfo.to_be_bytes());
            out[8..24].copy_from_slice(&ip.octets());
            out[24..28].copy_from_slice(&scope.to_ne_bytes());
            out
        }
        SockAddr::Unix(name) => {
            let mut out = AF_UNIX.to_ne_bytes().to_vec();
            match name {
                UnixName::Unnamed => {}
                UnixName::Path(path) => {
                    out.extend_from_slice(path);
                    out.push(0);
                }
                UnixName::Abstract(name) => {
                    out.push(0);
                    out.extend_from_slice(name);
                }
            }
            out
        }
    }
}

/// The unspecified address of `family` with `port` (an unbound socket's name).
pub fn unspecified(family: u16, port: u16) -> SocketAddr {
    match family {
        AF_INET6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(family: u16, port: u16, rest: &[u8]) -> Vec<u8> {
        let mut out = family.to_ne_bytes().to_vec();
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn ipv4_round_trip_and_length_rules() {
        let bytes = inet(AF_INET, 8080, &[10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 0, 0]);
        let addr = parse(&bytes, AF_INET).unwrap();
        assert_eq!(addr, SockAddr::Inet("10.0.2.15:8080".parse().unwrap()));
        assert_eq!(encode(&addr, AF_INET), bytes);
        assert_eq!(parse(&bytes[..15], AF_INET), Err(Errno::EINVAL));
        assert_eq!(parse(&bytes[..1], AF_INET), Err(Errno::EINVAL));
        assert_eq!(parse(&bytes, AF_INET6), Err(Errno::EAFNOSUPPORT));
    }

    #[test]
    fn ipv6_maps_ipv4_both_ways() {
        let mut rest = alloc::vec![0u8; 4];
        rest.extend_from_slice(&Ipv4Addr::new(10, 0, 2, 1).to_ipv6_mapped().octets());
        rest.extend_from_slice(&[0; 4]);
        let bytes = inet(AF_INET6, 80, &rest);
        let addr = parse(&bytes, AF_INET6).unwrap();
        assert_eq!(addr, SockAddr::Inet("10.0.2.1:80".parse().unwrap()));
        assert_eq!(encode(&addr, AF_INET6), bytes);
        assert_eq!(encode(&addr, AF_INET).len(), INET_LEN);
        // 24 bytes (no scope id) is accepted, 23 is not.
        assert!(parse(&bytes[..24], AF_INET6).is_ok());
        assert_eq!(parse(&bytes[..23], AF_INET6), Err(Errno::EINVAL));
        let v6: SocketAddr = "[fd00::1]:443".parse().unwrap();
        assert_eq!(parse(&encode(&SockAddr::Inet(v6), AF_INET6), AF_INET6).unwrap(), SockAddr::Inet(v6));
    }

    #[test]
    fn unix_names() {
        let mut path = AF_UNIX.to_ne_bytes().to_vec();
        path.extend_from_slice(b"/tmp/sock\0garbage");
        assert_eq!(parse(&path, AF_UNIX).unwrap(), SockAddr::Unix(UnixName::Path(b"/tmp/sock".to_vec())));
        let mut abstract_name = AF_UNIX.to_ne_bytes().to_vec();
        abstract_name.extend_from_slice(b"\0name");
        let parsed = parse(&abstract_name, AF_UNIX).unwrap();
        assert_eq!(parsed, SockAddr::Unix(UnixName::Abstract(b"name".to_vec())));
        assert_eq!(encode(&parsed, AF_UNIX), abstract_name);
        assert_eq!(parse(&AF_UNIX.to_ne_bytes(), AF_UNIX).unwrap(), SockAddr::Unix(UnixName::Unnamed));
        let mut too_long = AF_UNIX.to_ne_bytes().to_vec();
        too_long.resize(UN_LEN + 1, b'a');
        assert_eq!(parse(&too_long, AF_UNIX), Err(Errno::EINVAL));
        assert_eq!(encode(&SockAddr::Unix(UnixName::Path(b"/a".to_vec())), AF_UNIX), [&AF_UNIX.to_ne_bytes()[..], b"/a\0"].concat());
    }

    #[test]
    fn unspec_dissolves_only_inet() {
        assert_eq!(parse(&[0u8; 16], AF_INET).unwrap(), SockAddr::Unspec);
        assert_eq!(parse(&[0u8; 16], AF_UNIX), Err(Errno::EAFNOSUPPORT));
    }
}
