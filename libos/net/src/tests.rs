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
