//! Host tests of the whole stack: two stacks on a [`crate::testing`] wire, driven by hand.

use crate::socket::{TcpListener, TcpStream, UdpSocket};
use crate::stack::{Ipv4Config, Ipv4Setup, Stack};
use crate::testing::{pair, pump};
use crate::{Event, Interest, Poller};
use core::net::{Ipv4Addr, SocketAddr};
use libos_core::hal;
use libos_core::testing::FakePlatform;
use libos_core::Errno;
use smoltcp::wire::Ipv4Cidr;
use std::sync::OnceLock;

fn platform() -> &'static FakePlatform {
    static PLATFORM: OnceLock<&'static FakePlatform> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let p: &'static FakePlatform = Box::leak(Box::new(FakePlatform::new()));
        hal::set_platform(p);
        p
    })
}

fn setup(last: u8) -> Ipv4Setup {
    Ipv4Setup::Static(Ipv4Config { address: Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, last), 24)), gateway: None, dns: None })
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(10, 0, 0, last).into(), port)
}

/// Pumps the wire, advancing the clock 1 ms per round so that timers (delayed ACKs,
/// retransmissions) fire.
fn run(stacks: &[&'static Stack], rounds: usize) {
    for _ in 0..rounds {
        platform().advance(1_000_000);
        pump(stacks, 4);
    }
}

fn connected(a: &'static Stack, b: &'static Stack, port: u16) -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind_on(a, addr(1, port), 16).unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect_start_on(b, addr(1, port)).unwrap();
    client.set_nonblocking(true).unwrap();
    run(&[a, b], 20);
    client.wait_connected(None).unwrap();
    let (server, from) = listener.accept().unwrap();
    assert_eq!(from, client.local_addr().unwrap());
    server.set_nonblocking(true).unwrap();
    (listener, server, client)
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8 ^ (i / 4096) as u8
}

fn transfer(a: &'static Stack, b: &'static Stack, sender: &TcpStream, receiver: &TcpStream, total: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..total).map(pattern).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..200_000 {
        if sent < total {
            match sender.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        run(&[a, b], 1);
        loop {
            match receiver.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        if got.len() == total {
            break;
        }
    }
    got
}

#[test]
fn udp_datagrams_cross_and_unbound_ports_are_refused_quietly() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let server = UdpSocket::bind_on(a, addr(1, 7)).unwrap();
    server.set_nonblocking(true).unwrap();
    assert_eq!(UdpSocket::bind_on(a, addr(1, 7)).err(), Some(Errno::EADDRINUSE));
    let client = UdpSocket::bind_on(b, addr(0, 0).into_unspecified()).unwrap();
    client.set_nonblocking(true).unwrap();
    for size in [1usize, 512, 1472] {
        let payload: Vec<u8> = (0..size).map(pattern).collect();
        assert_eq!(client.send_to(&payload, addr(1, 7)).unwrap(), size);
        run(&[a, b], 5);
        let mut buf = vec![0u8; 2048];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &payload[..]);
        assert_eq!(from.port(), client.local_addr().unwrap().port());
    }
    assert_eq!(client.send_to(&[0u8; 1473], addr(1, 7)).err(), Some(Errno::EMSGSIZE));
    assert_eq!(server.recv_from(&mut [0u8; 16]).err(), Some(Errno::EAGAIN));
    // To a port nobody bound: smoltcp answers port-unreachable; nothing breaks.
    client.send_to(b"x", addr(1, 9)).unwrap();
    run(&[a, b], 5);
}

trait Unspecified {
    fn into_unspecified(self) -> SocketAddr;
}
impl Unspecified for SocketAddr {
    fn into_unspecified(self) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port())
    }
}

#[test]
fn tcp_transfers_are_byte_identical_both_ways() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let (_listener, server, client) = connected(a, b, 80);
    let got = transfer(a, b, &client, &server, 1 << 20);
    assert_eq!(got.len(), 1 << 20);
    assert!(got.iter().enumerate().all(|(i, &x)| x == pattern(i)));
    let back = transfer(a, b, &server, &client, 300_000);
    assert!(back.len() == 300_000 && back.iter().enumerate().all(|(i, &x)| x == pattern(i)));
    // Orderly close: the reader sees end of stream.
    client.shutdown(crate::Shutdown::Write).unwrap();
    run(&[a, b], 5);
    assert_eq!(server.read(&mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn tcp_segments_up_to_64k_cross_whole_with_segmentation_offload() {
    platform();
    let offload = crate::nic::Offload { checksum: true, segmentation: true };
    let (a, b) = crate::testing::pair_with(setup(1), setup(2), 0, offload);
    let (_listener, server, client) = connected(a, b, 82);
    let before = a.counters.snapshot();
    let got = transfer(a, b, &client, &server, 1 << 20);
    assert!(got.len() == 1 << 20 && got.iter().enumerate().all(|(i, &x)| x == pattern(i)));
    let after = a.counters.snapshot();
    let frames = after.rx_packets - before.rx_packets;
    // 720 data frames at a 1500-byte MTU; here segments as large as the send buffer allows.
    assert!((16..100).contains(&frames), "{frames} frames for 1 MiB");
}

#[test]
fn ipv6_tcp_flows_with_segmentation_offload_on() {
    // Segmentation offload is IPv4-only (smoltcp 0.14 drops IPv6 packets over the MTU even
    // when the device would cut them): an IPv6 stream must still go through, in MTU-sized
    // segments, on a NIC that offloads segmentation.
    platform();
    let offload = crate::nic::Offload { checksum: true, segmentation: true };
    let (a, b) = crate::testing::pair_with(setup(1), setup(2), 0, offload);
    // a's link-local address from its MAC 02:00:00:00:00:01 (modified EUI-64).
    let a6 = SocketAddr::new("fe80::ff:fe00:1".parse::<core::net::Ipv6Addr>().unwrap().into(), 84);
    let listener = TcpListener::bind_on(a, SocketAddr::new(core::net::Ipv6Addr::UNSPECIFIED.into(), 84), 4).unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect_start_on(b, a6).unwrap();
    client.set_nonblocking(true).unwrap();
    run(&[a, b], 50);
    client.wait_connected(None).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let got = transfer(a, b, &client, &server, 300_000);
    assert!(got.len() == 300_000 && got.iter().enumerate().all(|(i, &x)| x == pattern(i)), "{} of 300 000 bytes", got.len());
}

#[test]
fn many_connections_keep_the_neighbour_list_bounded() {
    // Every SYN-ACK goes out with the initial one-second RTO, which is how a socket silenced
    // for a missing neighbour looks too: each new connection is listed once, by flag (not by a
    // scan of the list), and connections coming and going (their slots freed and reused) do
    // not grow the list past twice the slots.
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let listener = TcpListener::bind_on(a, addr(1, 83), 256).unwrap();
    listener.set_nonblocking(true).unwrap();
    for round in 0..4 {
        let clients: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect_start_on(b, addr(1, 83)).unwrap()).collect();
        run(&[a, b], 20);
        let mut accepted = Vec::new();
        while let Ok((s, _)) = listener.accept() {
            accepted.push(s);
        }
        assert_eq!(accepted.len(), 200, "round {round}");
        let slots = a.with(|inner| inner.slots.len());
        let listed = a.with(|inner| inner.neighbor_waiting_len());
        assert!(listed <= 2 * slots + 1, "round {round}: {listed} listed for {slots} slots");
        drop((clients, accepted));
        // Past TIME-WAIT (10 s): the slots are freed, and the next round reuses them, so a
        // list that only grew would outgrow them from the third round on.
        run(&[a, b], 12_000);
    }
}

#[test]
fn tcp_survives_loss() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 7);
    let listener = TcpListener::bind_on(a, addr(1, 81), 4).unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = TcpStream::connect_start_on(b, addr(1, 81)).unwrap();
    client.set_nonblocking(true).unwrap();
    let mut server = None;
    for _ in 0..5000 {
        run(&[a, b], 1);
        if let Ok((s, _)) = listener.accept() {
            server = Some(s);
            break;
        }
    }
    let server = server.expect("connection despite loss");
    server.set_nonblocking(true).unwrap();
    let got = transfer(a, b, &client, &server, 200_000);
    assert_eq!(got.len(), 200_000);
    assert!(got.iter().enumerate().all(|(i, &x)| x == pattern(i)));
}

#[test]
fn running_the_timers_does_not_wake_the_network_thread_again() {
    // Regression: running the timers reset the armed deadline, so the network thread was
    // kicked straight back after every run and spun while any TCP timer was pending.
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let (_listener, _server, client) = connected(a, b, 85);
    client.write(b"unacknowledged").unwrap(); // a retransmission timer is pending on b
    let deadline = b.next_timer().expect("a pending timer");
    b.take_kick();
    b.run_timers();
    assert!(!b.take_kick(), "running the timers must not look like a new, earlier timer");
    assert_eq!(b.next_timer(), Some(deadline), "the timer is still pending, not re-armed earlier");
}

#[test]
fn refused_reset_and_errors() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    // Nobody listens: the handshake is refused.
    let client = TcpStream::connect_start_on(b, addr(1, 99)).unwrap();
    client.set_nonblocking(true).unwrap();
    run(&[a, b], 10);
    assert_eq!(client.wait_connected(None).err(), Some(Errno::ECONNREFUSED));
    // A listener closed with a connection not accepted resets it; the client sees ECONNRESET.
    let listener = TcpListener::bind_on(a, addr(1, 82), 4).unwrap();
    assert_eq!(TcpListener::bind_on(a, addr(1, 82), 4).err(), Some(Errno::EADDRINUSE));
    let client = TcpStream::connect_start_on(b, addr(1, 82)).unwrap();
    client.set_nonblocking(true).unwrap();
    run(&[a, b], 10);
    client.wait_connected(None).unwrap();
    drop(listener);
    run(&[a, b], 10);
    assert_eq!(client.read(&mut [0u8; 4]).err(), Some(Errno::ECONNRESET));
    assert_eq!(client.write(b"x").err(), Some(Errno::ECONNRESET));
    // The port is free again.
    drop(TcpListener::bind_on(a, addr(1, 82), 4).unwrap());
}

#[test]
fn backlog_bounds_half_open_connections() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let listener = TcpListener::bind_on(a, addr(1, 83), 3).unwrap();
    listener.set_nonblocking(true).unwrap();
    let clients: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect_start_on(b, addr(1, 83)).unwrap()).collect();
    run(&[a, b], 20);
    let mut accepted = 0;
    while listener.accept().is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 3, "a backlog of 3 holds 3 connections until accept");
    assert!(a.counters.snapshot().rx_dropped > 0, "the extra SYNs were dropped and counted");
    drop(clients);
}

#[test]
fn poller_reports_only_ready_sockets() {
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let (listener, server, client) = connected(a, b, 84);
    let poller = Poller::new();
    poller.add(&listener, 1, Interest::READABLE).unwrap();
    poller.add(&server, 2, Interest::READABLE).unwrap();
    assert_eq!(poller.add(&server, 3, Interest::READABLE).err(), Some(Errno::EEXIST));
    let mut events = Vec::new();
    assert_eq!(poller.wait(&mut events, Some(core::time::Duration::from_nanos(1))).unwrap(), 0);
    client.write(b"ping").unwrap();
    run(&[a, b], 5);
    assert_eq!(poller.wait(&mut events, Some(core::time::Duration::from_nanos(1))).unwrap(), 1);
    assert_eq!(events[0], Event { token: 2, readable: true, ..Event::default() });
    // Level-triggered: still readable until read.
    assert_eq!(poller.wait(&mut events, Some(core::time::Duration::from_nanos(1))).unwrap(), 1);
    assert_eq!(server.read(&mut [0u8; 8]).unwrap(), 4);
    assert_eq!(poller.wait(&mut events, Some(core::time::Duration::from_nanos(1))).unwrap(), 0);
    // A new connection makes the listener readable.
    let _second = TcpStream::connect_start_on(b, addr(1, 84)).unwrap();
    run(&[a, b], 10);
    assert_eq!(poller.wait(&mut events, Some(core::time::Duration::from_nanos(1))).unwrap(), 1);
    assert_eq!(events[0].token, 1);
    poller.delete(&listener).unwrap();
    assert_eq!(poller.delete(&listener).err(), Some(Errno::ENOENT));
}

#[test]
fn garbage_frames_are_dropped_and_counted() {
    platform();
    let (a, _b) = pair(setup(1), setup(2), 0);
    // Feed the receive path directly through a third wire end is not possible; use the
    // demultiplexer's verdict instead: every malformed frame bumps rx_dropped.
    let before = a.counters.snapshot().rx_dropped;
    a.with(|inner| {
        for junk in [&[][..], &[0u8; 13][..], &[0xffu8; 60][..]] {
            let mut frame = junk.to_vec();
            inner.ingress_for_test(&mut frame);
        }
    });
    assert_eq!(a.counters.snapshot().rx_dropped, before + 3);
}

mod driver {
    //! The virtio-net driver against `libos_virtio::testing::FakeTransport`, a fake device
    //! that walks the real rings.
    use super::platform;
    use crate::nic::{NicCounters, Offload, RxPath, TxPath};
    use crate::virtio_net::{DEVICE_ID, VirtioNet, choose_features};
    use libos_virtio::testing::FakeTransport;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// Frames the fake device was given to send.
    type Sent = Arc<Mutex<Vec<Vec<u8>>>>;

    const MAC_AND_MERGE: u64 = (1 << 5) | (1 << 15);
    /// What a tap back end offers: checksums both ways, TSO both ways (v4 and v6), merging.
    const TAP_FEATURES: u64 = MAC_AND_MERGE | 0b11 | (1 << 7) | (1 << 8) | (1 << 11) | (1 << 12);

    /// A fake NIC offering MAC and MRG_RXBUF: frames to deliver (each fills one receive buffer;
    /// the first of a frame starts with its 12-byte header) and frames it was sent.
    fn device(incoming: Vec<Vec<u8>>) -> (VirtioNet, Sent, &'static FakeTransport) {
        device_with(MAC_AND_MERGE, incoming)
    }

    fn device_with(features: u64, incoming: Vec<Vec<u8>>) -> (VirtioNet, Sent, &'static FakeTransport) {
        platform();
        let incoming = Arc::new(Mutex::new(VecDeque::from(incoming)));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sent_by_device = sent.clone();
        let transport: &'static FakeTransport = Box::leak(Box::new(FakeTransport::new(
            DEVICE_ID,
            features,
            MAC.to_vec(),
            256,
            Box::new(move |queue, readable| match queue {
                0 => incoming.lock().unwrap().pop_front(),
                _ => {
                    sent_by_device.lock().unwrap().push(readable.to_vec());
                    Some(Vec::new())
                }
            }),
        )));
        (VirtioNet::new(Box::new(transport), Arc::new(NicCounters::default())).unwrap(), sent, transport)
    }

    fn with_header(frame: &[u8]) -> Vec<u8> {
        let mut buffer = vec![0u8; 12];
        buffer[10] = 1; // num_buffers
        buffer.extend_from_slice(frame);
        buffer
    }

    #[test]
    fn frames_arrive_in_place_and_bad_ones_are_counted() {
        let good: Vec<u8> = (0..60u8).collect();
        let mut no_buffers = with_header(&good);
        no_buffers[10] = 0;
        let (mut nic, _, _) = device(vec![with_header(&good), vec![0u8; 11], with_header(&[0xab; 1514]), no_buffers, with_header(&good)]);
        assert_eq!(nic.mac, MAC);
        assert_eq!(nic.offload, Offload::default());
        let mut frames = Vec::new();
        while nic.rx.receive(&mut |frame| frames.push(frame.to_vec())) {}
        assert!(frames == vec![good.clone(), vec![0xab; 1514], good], "{} frames of {:?} bytes", frames.len(), frames.iter().map(Vec::len).collect::<Vec<_>>());
        let stats = nic.counters.snapshot();
        assert_eq!((stats.rx_packets, stats.rx_dropped), (3, 2));
        nic.rx.flush();
    }

    #[test]
    fn frames_over_several_buffers_are_gathered_and_oversized_ones_dropped() {
        // A 10 000-byte frame over three page-sized buffers (read in place: they are adjacent
        // and full), one over 64 KiB over 40, then a small one: the ring must stay whole
        // through all of them.
        let frame: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut first = with_header(&frame[..4084]);
        first[10] = 3;
        let mut incoming = vec![first, frame[4084..8180].to_vec(), frame[8180..].to_vec()];
        let mut huge = with_header(&[1u8; 2036]);
        huge[10] = 40;
        incoming.push(huge);
        incoming.extend((1..40).map(|_| vec![2u8; 4096]));
        incoming.push(with_header(&[7u8; 60]));
        let (mut nic, _, _) = device_with(TAP_FEATURES, incoming);
        let mut frames = Vec::new();
        while nic.rx.receive(&mut |f| frames.push(f.to_vec())) {}
        assert_eq!(frames.len(), 2);
        assert!(frames[0] == frame, "the gathered frame differs");
        assert_eq!(frames[1], vec![7u8; 60]);
        let stats = nic.counters.snapshot();
        assert_eq!((stats.rx_packets, stats.rx_dropped), (2, 1));

        // The same frame where the ring wraps (buffers 255, 0, 1: not adjacent): gathered by
        // copy, byte for byte, and the next frame after it is still read.
        let mut first = with_header(&frame[..4084]);
        first[10] = 3;
        let mut incoming: Vec<Vec<u8>> = (0..255).map(|_| with_header(&[9u8; 60])).collect();
        incoming.extend([first, frame[4084..8180].to_vec(), frame[8180..].to_vec(), with_header(&[7u8; 60])]);
        let (mut nic, _, transport) = device_with(TAP_FEATURES, incoming);
        let mut frames = Vec::new();
        // The device filled every buffer (the small frames and the big one's first part); once
        // the driver has taken the small ones, the rest of the big one goes into the reposted
        // buffers at the start of the pool.
        for _ in 0..255 {
            assert!(nic.rx.receive(&mut |f| frames.push(f.to_vec())));
        }
        transport.process(0);
        while nic.rx.receive(&mut |f| frames.push(f.to_vec())) {}
        assert_eq!(frames.len(), 257);
        assert!(frames[255] == frame, "the frame gathered across the wrap differs");
        assert_eq!(frames[256], vec![7u8; 60]);
    }

    #[test]
    fn offloads_need_their_prerequisites() {
        let all = TAP_FEATURES;
        let chosen = choose_features(all);
        assert_eq!(chosen & (1 << 12), 0, "no HOST_TSO6: smoltcp drops large IPv6 segments");
        assert_eq!(chosen, all & !(1 << 12));
        assert_eq!(choose_features(all & !0b10), MAC_AND_MERGE, "no checksum offload, no TSO");
        assert_eq!(choose_features(all & !(1 << 15)) & (0b11 << 7), 0, "large frames need MRG_RXBUF");
        let (nic, _, _) = device_with(all, Vec::new());
        assert_eq!(nic.offload, Offload { checksum: true, segmentation: true });
    }

    /// An Ethernet + IPv4 + TCP frame of `len` bytes (TCP header without options).
    fn tcp_frame(len: usize) -> Vec<u8> {
        let mut frame = vec![0u8; len];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        frame[23] = 6;
        frame[26..34].copy_from_slice(&[10, 0, 2, 15, 10, 0, 2, 1]);
        frame[46] = 5 << 4;
        frame
    }

    #[test]
    fn segments_for_the_device_carry_their_mss_and_large_buffers_are_bounded() {
        let (mut nic, sent, transport) = device_with(TAP_FEATURES, Vec::new());
        let segment = tcp_frame(20_000);
        assert!(!nic.tx.transmit(20_000, None, &mut |_| panic!("over the MTU without segmentation")));
        // Over the MTU but not IPv4 TCP (here IPv6): the device could not cut it; dropped.
        let mut ipv6 = segment.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(!nic.tx.transmit(20_000, Some(1460), &mut |b| b.copy_from_slice(&ipv6)));
        assert!(nic.tx.transmit(20_000, Some(1460), &mut |b| b.copy_from_slice(&segment)));
        nic.tx.flush();
        {
            let sent = sent.lock().unwrap();
            let header = &sent[0][..12];
            assert_eq!(header[0], 1, "NEEDS_CSUM");
            assert_eq!(header[1], 1, "GSO TCPv4");
            assert_eq!(u16::from_le_bytes([header[2], header[3]]), 54, "headers to copy into every segment");
            assert_eq!(u16::from_le_bytes([header[4], header[5]]), 1460, "MSS");
            assert_eq!(u16::from_le_bytes([header[6], header[7]]), 34, "csum_start");
            assert_eq!(u16::from_le_bytes([header[8], header[9]]), 16, "csum_offset");
            assert_eq!(sent[0].len(), 12 + 20_000);
        }
        // With the device holding every large buffer, the path reports none free (so smoltcp
        // gets no token it could not use) and a further large frame is refused, not lost
        // silently.
        transport.set_answer_on_notify(false);
        assert!(nic.tx.reclaim() > 0);
        for _ in 0..8 {
            assert!(nic.tx.transmit(20_000, Some(1460), &mut |b| b.copy_from_slice(&segment)));
        }
        assert_eq!(nic.tx.reclaim(), 0);
        assert!(!nic.tx.transmit(20_000, Some(1460), &mut |_| panic!("no large buffer is free")));
        transport.process(1);
        assert_eq!(nic.tx.reclaim(), 256);
        assert_eq!(nic.counters.snapshot().tx_dropped, 3);
    }

    #[test]
    fn frames_leave_with_a_zero_header_and_one_notification_per_flush() {
        let (mut nic, sent, transport) = device(Vec::new());
        let before = transport.notifications.load(std::sync::atomic::Ordering::Relaxed);
        for i in 0..3u8 {
            assert!(nic.tx.transmit(64, None, &mut |buffer| buffer.fill(i)));
        }
        assert!(!nic.tx.transmit(1515, None, &mut |_| panic!("an oversized frame is refused before filling")));
        nic.tx.flush();
        assert_eq!(transport.notifications.load(std::sync::atomic::Ordering::Relaxed), before + 1);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 3);
        for (i, frame) in sent.iter().enumerate() {
            assert_eq!(&frame[..12], &[0u8; 12]);
            assert!(frame[12..].iter().all(|&b| b == i as u8) && frame.len() == 12 + 64);
        }
        assert_eq!(nic.tx.reclaim(), 256, "every buffer comes back once the device is done");
        assert_eq!(nic.counters.snapshot().tx_dropped, 1);
    }
}

#[test]
fn hostile_frames_through_the_whole_receive_path_never_panic() {
    // Mutations of real frames (ARP, ICMP, TCP SYN, UDP) and random bytes, fed to smoltcp
    // through the demultiplexer of a stack with a listener and a UDP socket.
    platform();
    let (a, b) = pair(setup(1), setup(2), 0);
    let _listener = TcpListener::bind_on(a, addr(1, 80), 8).unwrap();
    let _udp = UdpSocket::bind_on(a, addr(1, 7)).unwrap();
    // Resolve each other's addresses first, then capture real frames b sends to a.
    let _warm = UdpSocket::bind_on(b, addr(2, 5001)).unwrap().send_to(b"warm", addr(1, 7));
    run(&[a, b], 5);
    let captured = crate::testing::capture(b, a, |b| {
        let _ = TcpStream::connect_start_on(b, addr(1, 80));
        let u = UdpSocket::bind_on(b, addr(2, 5000)).unwrap();
        let _ = u.send_to(b"hello", addr(1, 7));
    });
    assert!(captured.len() >= 2, "captured {} frames", captured.len());
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut frame = captured[round % captured.len()].clone();
        match next() % 4 {
            0 => {
                let at = (next() as usize) % frame.len();
                frame[at] ^= next() as u8;
            }
            1 => frame.truncate((next() as usize) % (frame.len() + 1)),
            2 => {
                for _ in 0..8 {
                    let at = (next() as usize) % frame.len();
                    frame[at] = next() as u8;
                }
            }
            _ => frame = (0..(next() % 1600) as usize).map(|_| next() as u8).collect(),
        }
        a.with(|inner| inner.ingress_for_test(&mut frame));
        if round % 1000 == 0 {
            run(&[a, b], 1);
        }
    }
}

