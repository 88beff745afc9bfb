//! Internet checksums for checksum offload (pure, host-tested).
//!
//! When the device offers `VIRTIO_NET_F_CSUM` and `VIRTIO_NET_F_GUEST_CSUM`, smoltcp neither
//! computes nor verifies TCP, UDP and ICMP checksums; instead:
//! - on transmit, [`partial`] says where the device must put the checksum and the
//!   pseudo-header sum to seed it with (the device sums the rest: `NEEDS_CSUM`);
//! - on receive, frames the device marks (`DATA_VALID`, or `NEEDS_CSUM` from a local sender)
//!   are trusted, and the others are checked here with [`verify`].
//!
//! So the payload is summed at most once, by the host, instead of twice per packet in the guest.

const ETHERNET_HEADER: usize = 14;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Adds `data` as big-endian 16-bit words to `sum` (ones' complement, unfolded).
pub fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let (total, carry) = sum.overflowing_add(word);
        sum = total + u64::from(carry);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks(2);
    for pair in &mut pairs {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        let (total, carry) = sum.overflowing_add(u64::from(word));
        sum = total + u64::from(carry);
    }
    sum
}

/// Folds an unfolded sum to 16 bits (not complemented).
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Where the transport header of an IP frame starts, its protocol, and the pseudo-header sum
/// (0 for ICMPv4, which has none). `None` for frames that are not IPv4/IPv6 or are fragments.
fn transport(frame: &[u8]) -> Option<(usize, u8, u64)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETHERNET_HEADER..)?;
    match ethertype {
        0x0800 => {
            let header = usize::from(ip.first()? & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            if header < 20 || total < header || total > ip.len() || fragment & 0x3fff != 0 {
                return None;
            }
            let protocol = ip[9];
            let length = (total - header) as u64;
            let pseudo = if protocol == ICMP { 0 } else { add(u64::from(protocol) + length, &ip[12..20]) };
            Some((ETHERNET_HEADER + header, protocol, pseudo))
        }
        0x86dd => {
            let length = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            if ip.len() < 40 + length {
                return None;
            }
            let protocol = ip[6];
            Some((ETHERNET_HEADER + 40, protocol, add(u64::from(protocol) + length as u64, &ip[8..40])))
        }
        _ => None,
    }
}

fn checksum_offset(protocol: u8) -> Option<usize> {
    match protocol {
        TCP => Some(16),
        UDP => Some(6),
        ICMP | ICMPV6 => Some(2),
        _ => None,
    }
}

/// For a frame to send with its TCP/UDP/ICMP checksum left to the device: writes the
/// pseudo-header sum into the checksum field and returns `(csum_start, csum_offset)` for the
/// virtio-net header. `None`: nothing to offload (the frame is sent as it is).
pub fn partial(frame: &mut [u8]) -> Option<(u16, u16)> {
    let (start, protocol, pseudo) = transport(frame)?;
    let offset = checksum_offset(protocol)?;
    let field = frame.get_mut(start + offset..start + offset + 2)?;
    field.copy_from_slice(&fold(pseudo).to_be_bytes());
    Some((u16::try_from(start).ok()?, offset as u16))
}

/// Whether a received frame's TCP/UDP/ICMP checksum is right (frames of other kinds, and
/// IPv4 UDP without a checksum, pass).
pub fn verify(frame: &[u8]) -> bool {
    let Some((start, protocol, pseudo)) = transport(frame) else { return true };
    if checksum_offset(protocol).is_none() {
        return true;
    }
    let ip_end = match frame[12..14] {
        [0x08, 0x00] => ETHERNET_HEADER + usize::from(u16::from_be_bytes([frame[16], frame[17]])),
        _ => ETHERNET_HEADER + 40 + usize::from(u16::from_be_bytes([frame[18], frame[19]])),
    };
    let Some(segment) = frame.get(start..ip_end) else { return false };
    if protocol == UDP && frame[12..14] == [0x08, 0x00] && segment.get(6..8) == Some(&[0, 0]) {
        return true;
    }
    fold(add(pseudo, segment)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};

    /// A UDP frame with a correct checksum, built by smoltcp.
    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (Ipv4Address::new(10, 0, 2, 1), Ipv4Address::new(10, 0, 2, 15));
        let udp = UdpRepr { src_port: 40000, dst_port: 7 };
        let ip = Ipv4Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Udp, payload_len: 8 + payload.len(), hop_limit: 64 };
        let mut frame = alloc::vec![0u8; 14 + 20 + 8 + payload.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        EthernetRepr { src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]), dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]), ethertype: EthernetProtocol::Ipv4 }.emit(&mut eth);
        let caps = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut packet, &caps);
        let mut datagram = UdpPacket::new_unchecked(packet.payload_mut());
        udp.emit(&mut datagram, &src.into(), &dst.into(), payload.len(), |b| b.copy_from_slice(payload), &caps);
        frame
    }

    #[test]
    fn verify_accepts_good_and_rejects_flipped_bits() {
        for len in [0usize, 1, 7, 8, 9, 100, 1472] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut frame = udp_frame(&payload);
            assert!(verify(&frame), "{len}-byte payload");
            if len > 0 {
                let last = frame.len() - 1;
                frame[last] ^= 0x40;
                assert!(!verify(&frame), "{len}-byte payload, one bit flipped");
            }
        }
    }

    #[test]
    fn partial_plus_the_devices_sum_gives_the_real_checksum() {
        let payload: Vec<u8> = (0..333).map(|i| i as u8).collect();
        let good = udp_frame(&payload);
        let mut frame = good.clone();
        frame[14 + 20 + 6..14 + 20 + 8].fill(0);
        let (start, offset) = partial(&mut frame).unwrap();
        assert_eq!((start, offset), (34, 6));
        // What the device does: sum from csum_start to the end, store the complement.
        let sum = !fold(add(0, &frame[usize::from(start)..]));
        let at = usize::from(start + offset);
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(frame, good);
    }

    #[test]
    fn odd_frames_never_panic() {
        let good = udp_frame(b"hello");
        for len in 0..good.len() {
            let mut prefix = good[..len].to_vec();
            let _ = verify(&prefix);
            let _ = partial(&mut prefix);
        }
    }
}
