//! Host tests of netecho's pure helpers.

use super::*;
use core::net::{IpAddr, Ipv4Addr};

#[test]
fn pattern_bytes() {
    assert_eq!(pattern::byte(0), 0);
    assert_eq!(pattern::byte(1), 1);
    assert_eq!(pattern::byte(250), 250);
    assert_eq!(pattern::byte(251), 0, "period 251");
    assert_eq!(pattern::byte(4095), (4095 % 251) as u8);
    assert_eq!(pattern::byte(4096), (4096 % 251) as u8 ^ 1, "each 4 KiB block is xored with its number");
    assert_eq!(pattern::byte(4096 * 300 + 7), ((4096 * 300 + 7) % 251) as u8 ^ (300 % 256) as u8);
}

#[test]
fn fill_continues_at_any_offset() {
    let mut whole = [0u8; 10_000];
    pattern::fill(&mut whole, 0);
    for split in [0, 1, 250, 251, 4095, 4096, 9999] {
        let mut first = vec![0u8; split];
        let mut second = vec![0u8; 10_000 - split];
        pattern::fill(&mut first, 0);
        pattern::fill(&mut second, split as u64);
        assert_eq!([first, second].concat(), whole, "split at {split}");
    }
}

#[test]
fn fnv1a64_reference_values() {
    // From the FNV reference test vectors.
    let hash = |bytes: &[u8]| {
        let mut h = Fnv1a64::new();
        h.update(bytes);
        h.value()
    };
    assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    let mut h = Fnv1a64::new();
    h.update(b"foo");
    h.update(b"bar");
    assert_eq!(h.value(), hash(b"foobar"), "streaming equals one shot");
    assert_eq!(Fnv1a64::new().hex(), "cbf29ce484222325");
    let mut small = Fnv1a64(0xab);
    assert_eq!(small.hex(), "00000000000000ab", "always 16 digits");
    small.update(b"");
    assert_eq!(small.value(), 0xab);
}

#[test]
fn pattern_checksum_is_independent_of_chunking() {
    let total = 300_000u64;
    let mut one = Fnv1a64::new();
    let mut buf = vec![0u8; total as usize];
    pattern::fill(&mut buf, 0);
    one.update(&buf);
    let mut chunked = Fnv1a64::new();
    let mut offset = 0u64;
    let mut chunk = [0u8; 7919];
    while offset < total {
        let n = chunk.len().min((total - offset) as usize);
        pattern::fill(&mut chunk[..n], offset);
        chunked.update(&chunk[..n]);
        offset += n as u64;
    }
    assert_eq!(one, chunked);
}

#[test]
fn echo_buffer_keeps_every_byte_in_order() {
    let mut buffer = EchoBuffer::new();
    assert!(buffer.is_empty() && buffer.front().is_empty());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut out = Vec::new();
    let mut fed = 0;
    // Feed in 1000-byte reads, drain in odd-sized writes, interleaved.
    while out.len() < data.len() {
        if fed < data.len() && buffer.accepts_input() {
            let end = (fed + 1000).min(data.len());
            buffer.push(&data[fed..end]);
            fed = end;
        }
        let n = buffer.front().len().min(777);
        out.extend_from_slice(&buffer.front()[..n]);
        buffer.consume(n);
    }
    assert_eq!(out, data);
    assert!(buffer.is_empty());
}

#[test]
fn echo_buffer_stops_taking_input_at_the_limit() {
    let mut buffer = EchoBuffer::new();
    let block = [1u8; 4096];
    let mut pushes = 0;
    while buffer.accepts_input() {
        buffer.push(&block);
        pushes += 1;
    }
    assert_eq!(buffer.len(), EchoBuffer::LIMIT);
    assert_eq!(pushes, EchoBuffer::LIMIT / block.len());
    buffer.consume(1);
    assert!(buffer.accepts_input());
    buffer.consume(usize::MAX);
    assert!(buffer.is_empty());
}

#[test]
fn counts() {
    assert_eq!(parse_count("0"), Some(0));
    assert_eq!(parse_count("4096"), Some(4096));
    assert_eq!(parse_count("64K"), Some(64 << 10));
    assert_eq!(parse_count("100m"), Some(100 << 20));
    assert_eq!(parse_count("1G"), Some(1 << 30));
    for bad in ["", "K", "-1", "1.5M", "12x", "+5", "99999999999999999999", "17179869184G"] {
        assert_eq!(parse_count(bad), None, "{bad}");
    }
}

#[test]
fn commands() {
    assert_eq!(Command::parse(&["tcp", "7"]), Ok(Command::TcpEcho(7, None, None)));
    assert_eq!(Command::parse(&["tcp", "7", "1K"]), Ok(Command::TcpEcho(7, Some(1024), None)));
    assert_eq!(Command::parse(&["tcp", "7", "10", "99"]), Ok(Command::TcpEcho(7, Some(10), Some(99))));
    assert_eq!(Command::parse(&["udp", "7"]), Ok(Command::UdpEcho(7)));
    assert_eq!(Command::parse(&["sink", "9000"]), Ok(Command::Sink(9000)));
    assert_eq!(
        Command::parse(&["source", "10.0.2.2:9000", "1M"]),
        Ok(Command::Source(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)), 9000), 1 << 20))
    );
    assert_eq!(Command::parse(&["dhcp"]), Ok(Command::Dhcp));
    assert_eq!(Command::parse(&["idle"]), Ok(Command::Idle));
    assert_eq!(Command::parse(&["ping-wait", "1000"]), Ok(Command::PingWait(1000)));
    assert_eq!(Command::parse(&["bench", "stream-in", "9", "256M"]), Ok(Command::Bench(BenchMode::StreamIn, 9, 256 << 20)));
    assert_eq!(Command::parse(&["bench", "http", "80", "100"]), Ok(Command::Bench(BenchMode::Http, 80, 100)));
    assert!(Command::parse(&["bench", "stream", "9", "1"]).is_err());
    assert_eq!(Command::parse(&["hold", "7", "50", "3"]), Ok(Command::Hold(7, 50, 3)));
    for bad in [
        &[][..],
        &["tcp"],
        &["tcp", "65536"],
        &["tcp", "7", "many"],
        &["tcp", "7", "8", "9", "10"],
        &["source", "10.0.2.2", "5"],
        &["source", "host:80", "5"],
        &["source", "10.0.2.2:80", "lots"],
        &["ping-wait"],
        &["frobnicate"],
    ] {
        assert!(Command::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn request_heads_end_at_the_blank_line() {
    assert_eq!(request_head_len(b"GET / HTTP/1.1\r\nHost: g\r\n\r\n"), Some(27));
    assert_eq!(request_head_len(b"GET / HTTP/1.1\r\nHost: g\r\n"), None);
    assert_eq!(request_head_len(b""), None);
    assert!(HTTP_HEAD.ends_with(b"Content-Length: 4096\r\n\r\n") && HTTP_BODY == 4096);
}
