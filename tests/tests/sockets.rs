//! posix-shim's sockets (issue 14) from C, on both architectures, with `apps/c-shimtest`'s
//! socket families (`apps/c-shimtest/c/net.c`):
//!
//! - `unix` and `net`: AF_UNIX sockets inside the program, and every AF_INET call that needs
//!   no peer, errors included (the C program checks each result itself);
//! - `netpeer`: the guest as a client of a peer this test runs on the host end of a tap
//!   (10.0.2.1, in a network namespace made for the test): TCP echo through every send and
//!   receive call, a refused port, a non-blocking connect, EPIPE/SIGPIPE after the peer
//!   closed, UDP echo, `sendfile`;
//! - `netserve`: an epoll edge-triggered C server that 1000 host clients connect to, in waves
//!   of 250 open at once, each sending 2000 bytes, reading them back, and closing: no event may
//!   be lost (the server stops only when every connection closed).
//!
//! Every wait is bounded; guests are killed and namespaces deleted when a test ends.

use libos_tests::{Boot, arches, netns};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use xtask::netns::{GUEST_IP, HOST_IP};

const PEER_PORT: u16 = 7100;

#[test]
fn unix_and_peerless_socket_calls_follow_linux() {
    for arch in arches() {
        // A NIC (QEMU's user network) so that AF_INET sockets have an interface to bind.
        let booted = Boot::app("c-shimtest").args(&["unix", "net"]).net_user(&[]).on(arch);
        booted.exits_with(0).does_not_print("FAIL").prints("ok unix\n").prints("ok net\n");
    }
}

/// One connection of the peer: the first line says what to do.
fn serve_peer_connection(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut command = String::new();
    reader.read_line(&mut command)?;
    let mut writer = stream;
    match command.trim() {
        "echo" => {
            let mut buf = [0u8; 16384];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(()); // the guest shut down its writing: close ours too
                }
                writer.write_all(&buf[..n])?;
            }
        }
        _ => Ok(()), // "close": drop the connection at once
    }
}

/// The host peer of the `netpeer` family, in the test's namespace until `stop`.
fn start_peer(ns: &xtask::netns::Netns, stop: Arc<AtomicBool>) {
    let tcp_stop = stop.clone();
    ns.spawn(move || {
        let listener = TcpListener::bind((HOST_IP, PEER_PORT)).expect("peer: binding TCP");
        listener.set_nonblocking(true).expect("peer: non-blocking listener");
        while !tcp_stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("peer: blocking stream");
                    std::thread::spawn(move || serve_peer_connection(stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
    .expect("peer: TCP thread in the namespace");
    ns.spawn(move || {
        let socket = UdpSocket::bind((HOST_IP, PEER_PORT)).expect("peer: binding UDP");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("peer: UDP timeout");
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    })
    .expect("peer: UDP thread in the namespace");
}

#[test]
fn a_c_client_talks_to_a_host_peer() {
    for arch in arches() {
        let ns = netns();
        let stop = Arc::new(AtomicBool::new(false));
        start_peer(&ns, stop.clone());
        let booted = Boot::app("c-shimtest").args(&[&format!("netpeer={PEER_PORT}")]).net_tap_in(&ns).timeout(Duration::from_secs(120)).on(arch);
        stop.store(true, Ordering::Relaxed);
        booted.exits_with(0).does_not_print("FAIL").prints("ok netpeer\n");
    }
}

/// Connects `count` clients at once, then each sends `len` bytes, reads them back and closes.
fn clients_wave(count: usize, len: usize, port: u16) -> Result<(), String> {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let stream = TcpStream::connect_timeout(&format!("{GUEST_IP}:{port}").parse().unwrap(), Duration::from_secs(30)).map_err(|e| format!("client {i}: connect: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        streams.push(stream);
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        stream.write_all(&payload).map_err(|e| format!("client {i}: write: {e}"))?;
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        let mut back = vec![0u8; len];
        stream.read_exact(&mut back).map_err(|e| format!("client {i}: reading the echo: {e}"))?;
        if back != payload {
            return Err(format!("client {i}: the echo differs"));
        }
    }
    Ok(()) // dropping the streams closes them all
}

#[test]
fn an_edge_triggered_c_server_loses_no_event_with_1000_clients() {
    const CLIENTS: usize = 1000;
    const WAVE: usize = 250;
    const PORT: u16 = 7200;
    for arch in arches() {
        // 250 connections at once with 16 KiB buffers each way fit in 256 MiB with room.
        let started = Boot::app("c-shimtest")
            .args(&[&format!("netserve={PORT},{CLIENTS}")])
            .options("tcp_buffer=16384")
            .memory("256M")
            .net_tap()
            .timeout(Duration::from_secs(300))
            .start(arch);
        started.wait_for("serving", Duration::from_secs(60));
        let result = started.netns().run(|| -> Result<(), String> {
            for _ in 0..CLIENTS / WAVE {
                clients_wave(WAVE, 2000, PORT)?;
            }
            Ok(())
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => started.fail(&e),
            Err(e) => started.fail(&format!("running the clients in the namespace: {e}")),
        }
        let booted = started.finish();
        booted.exits_with(0).does_not_print("FAIL").prints(&format!("served {CLIENTS} connections"));
    }
}

/// A DNS server for one name (IPv4 only), on the host end of the tap, until `stop`: `A` of
/// `name` answers `address`, any other question about `name` has no answer, any other name
/// is NXDOMAIN.
fn start_dns(ns: &xtask::netns::Netns, name: &'static str, address: [u8; 4], stop: Arc<AtomicBool>) {
    ns.spawn(move || {
        let socket = UdpSocket::bind((HOST_IP, 53)).expect("dns: binding port 53");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("dns: timeout");
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if let Some(reply) = dns_reply(&buf[..n], name, address) {
                let _ = socket.send_to(&reply, from);
            }
        }
    })
    .expect("dns: thread in the namespace");
}

/// The answer to the query `query` (RFC 1035 §4.1), or `None` for a malformed one.
fn dns_reply(query: &[u8], name: &str, address: [u8; 4]) -> Option<Vec<u8>> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let question_end = at + 4;
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let known = labels.join(".") == name;
    let answer = known && qtype == 1;
    let mut reply = query.get(..question_end)?.to_vec();
    reply[2] = 0x81; // QR, RD
    reply[3] = if known { 0x80 } else { 0x83 }; // RA; NOERROR or NXDOMAIN
    reply[4..12].copy_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    if answer {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&address);
    }
    Some(reply)
}

#[test]
fn names_resolve_from_etc_and_from_a_dns_server_in_the_namespace() {
    for arch in arches() {
        let ns = netns();
        let stop = Arc::new(AtomicBool::new(false));
        start_dns(&ns, "server.libos.test", [10, 0, 2, 99], stop.clone());
        let booted = Boot::app("c-shimtest")
            .args(&["resolve=server.libos.test,10.0.2.99"])
            .options("ip=10.0.2.15/24,gw=10.0.2.1,dns=10.0.2.1")
            .net_tap_in(&ns)
            .on(arch);
        stop.store(true, Ordering::Relaxed);
        booted.exits_with(0).does_not_print("FAIL").prints("ok resolve\n");
    }
}
