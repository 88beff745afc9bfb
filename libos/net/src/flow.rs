//! Classifying a received Ethernet frame by the socket that must see it, in constant time.
//!
//! smoltcp hands every incoming packet to every socket of the `SocketSet` it is given until
//! one accepts it, and its maintainers keep it that way by design. libos gives smoltcp a set
//! holding just the one socket a frame is for, so the demultiplexer here is the only per-packet
//! lookup: [`classify`] reads the few header fields that name the flow (never trusting a length
//! it has not checked), and the stack looks the [`Flow`] up in a hash map.

use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

/// What a frame is, as far as choosing its socket goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A TCP segment from `remote` to `local`; `syn` when it opens a connection (SYN without ACK).
    Tcp {
        /// Our end (destination of the segment).
        local: IpEndpoint,
        /// The peer (source).
        remote: IpEndpoint,
        /// SYN set and ACK clear.
        syn: bool,
    },
    /// A UDP datagram to `local` from `remote`.
    Udp {
        /// Our end.
        local: IpEndpoint,
        /// The sender.
        remote: IpEndpoint,
    },
    /// Anything the interface handles itself or the control sockets take: ARP, ICMP (echo
    /// requests counted in `echo_request`), NDP, IP fragments, extension headers, other
    /// protocols.
    Other {
        /// An ICMPv4/ICMPv6 echo request.
        echo_request: bool,
    },
    /// Too short or not IP/ARP: dropped before smoltcp sees it.
    Malformed,
}

const ETHERNET_HEADER: usize = 14;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

fn u16_at(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn ports(frame: &[u8], l4: usize) -> Option<(u16, u16)> {
    Some((u16_at(frame, l4)?, u16_at(frame, l4 + 2)?))
}

/// Classifies `frame` (Ethernet header first).
pub fn classify(frame: &[u8]) -> Flow {
    match u16_at(frame, 12) {
        Some(0x0800) => ipv4(frame).unwrap_or(Flow::Malformed),
        Some(0x86dd) => ipv6(frame).unwrap_or(Flow::Malformed),
        Some(0x0806) if frame.len() >= ETHERNET_HEADER + 28 => Flow::Other { echo_request: false },
        _ => Flow::Malformed,
    }
}

fn ipv4(frame: &[u8]) -> Option<Flow> {
    let ip = frame.get(ETHERNET_HEADER..)?;
    let version_ihl = *ip.first()?;
    let header = usize::from(version_ihl & 0xf) * 4;
    let total = usize::from(u16_at(ip, 2)?);
    if version_ihl >> 4 != 4 || header < 20 || total < header || total > ip.len() {
        return None;
    }
    let fragment = u16_at(ip, 6)?;
    let protocol = ip[9];
    let src = Ipv4Address::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
    let dst = Ipv4Address::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
    // A fragment (more-fragments set or a non-zero offset) carries no usable ports.
    if fragment & 0x3fff != 0 {
        return Some(Flow::Other { echo_request: false });
    }
    transport(frame, ETHERNET_HEADER + header, protocol, IpAddress::Ipv4(src), IpAddress::Ipv4(dst), PROTO_ICMP, 8)
}

fn ipv6(frame: &[u8]) -> Option<Flow> {
    let ip = frame.get(ETHERNET_HEADER..)?;
    if ip.len() < 40 || ip[0] >> 4 != 6 || 40 + usize::from(u16_at(ip, 4)?) > ip.len() {
        return None;
    }
    let next = ip[6];
    let src = Ipv6Address::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
    let dst = Ipv6Address::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
    transport(frame, ETHERNET_HEADER + 40, next, IpAddress::Ipv6(src), IpAddress::Ipv6(dst), PROTO_ICMPV6, 128)
}

fn transport(frame: &[u8], l4: usize, protocol: u8, src: IpAddress, dst: IpAddress, icmp: u8, echo: u8) -> Option<Flow> {
    match protocol {
        PROTO_TCP => {
            let (sport, dport) = ports(frame, l4)?;
            let flags = *frame.get(l4 + 13)?;
            frame.get(l4 + 19)?; // a whole minimal header
            let syn = flags & 0x02 != 0 && flags & 0x10 == 0;
            Some(Flow::Tcp { local: IpEndpoint::new(dst, dport), remote: IpEndpoint::new(src, sport), syn })
        }
        PROTO_UDP => {
            let (sport, dport) = ports(frame, l4)?;
            frame.get(l4 + 7)?;
            Some(Flow::Udp { local: IpEndpoint::new(dst, dport), remote: IpEndpoint::new(src, sport) })
        }
        p if p == icmp => Some(Flow::Other { echo_request: frame.get(l4) == Some(&echo) }),
        _ => Some(Flow::Other { echo_request: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn ipv4_frame(protocol: u8, l4: &[u8], fragment: u16) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 14];
        f[12] = 0x08;
        let total = 20 + l4.len();
        let mut ip = alloc::vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, (fragment >> 8) as u8, fragment as u8, 64, protocol, 0, 0];
        ip.extend([10, 0, 2, 1, 10, 0, 2, 15]);
        f.extend(ip);
        f.extend(l4);
        f
    }

    fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut h = alloc::vec![0u8; 20];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[12] = 0x50;
        h[13] = flags;
        h
    }

    #[test]
    fn tcp_segments_name_both_ends() {
        let flow = classify(&ipv4_frame(6, &tcp(40000, 80, 0x02), 0));
        let local = IpEndpoint::new(IpAddress::v4(10, 0, 2, 15), 80);
        let remote = IpEndpoint::new(IpAddress::v4(10, 0, 2, 1), 40000);
        assert_eq!(flow, Flow::Tcp { local, remote, syn: true });
        assert_eq!(classify(&ipv4_frame(6, &tcp(40000, 80, 0x12), 0)), Flow::Tcp { local, remote, syn: false });
    }

    #[test]
    fn udp_icmp_and_fragments() {
        let udp = [0x30, 0x39, 0, 7, 0, 8, 0, 0];
        assert!(matches!(classify(&ipv4_frame(17, &udp, 0)), Flow::Udp { local, .. } if local.port == 7));
        assert_eq!(classify(&ipv4_frame(1, &[8, 0, 0, 0, 0, 0, 0, 0], 0)), Flow::Other { echo_request: true });
        assert_eq!(classify(&ipv4_frame(1, &[0, 0, 0, 0], 0)), Flow::Other { echo_request: false });
        assert_eq!(classify(&ipv4_frame(17, &udp, 0x2000)), Flow::Other { echo_request: false });
    }

    #[test]
    fn truncated_and_lying_headers_are_malformed() {
        let good = ipv4_frame(6, &tcp(1, 2, 0x10), 0);
        for len in 0..good.len() {
            assert!(matches!(classify(&good[..len]), Flow::Malformed | Flow::Other { .. }), "prefix of {len} bytes");
        }
        let mut lying = good.clone();
        lying[14 + 3] = 200; // total length past the frame
        assert_eq!(classify(&lying), Flow::Malformed);
        let mut short_ihl = good;
        short_ihl[14] = 0x43;
        assert_eq!(classify(&short_ihl), Flow::Malformed);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic fuzz: every prefix of pseudo-random frames of each ethertype.
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..2000 {
            let mut frame = alloc::vec![0u8; 80];
            for b in frame.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            frame[12..14].copy_from_slice(&[[0x08, 0x00], [0x86, 0xdd], [0x08, 0x06]][(state % 3) as usize]);
            frame[14] = if state & 8 == 0 { 0x45 } else { 0x60 };
            for len in 0..frame.len() {
                let _ = classify(&frame[..len]);
            }
        }
    }
}
