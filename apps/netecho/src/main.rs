//! `netecho`: TCP/UDP test and benchmark tool for `libos::net`.
//!
//! `./x run netecho -- COMMAND`:
//! - `tcp PORT`: TCP echo server; many connections through one [`Poller`], non-blocking, each
//!   with a bounded pending-output buffer ([`EchoBuffer`]) so a slow reader loses nothing and
//!   a reader that never reads only stops being read. Prints `[netecho] tcp echo on port PORT`.
//!   `tcp PORT ROUNDS`: the same, measuring a benchmark window from the first data received
//!   to ROUNDS echoes later (counter and idle ticks, as `ping-wait`), then exits 0.
//!   `tcp PORT ROUNDS N`: also prints `[netecho] holding N connections` once it holds N.
//! - `udp PORT`: every datagram goes back to its sender. Prints `[netecho] udp echo on port PORT`.
//! - `sink PORT`: accepts connections one at a time, reads each to EOF and prints
//!   `[netecho] sink N bytes fnv1a64=H` (or `[netecho] sink error ENAME`), then takes the next.
//! - `source ADDR:PORT BYTES`: sends BYTES bytes of [`netecho::pattern`], shuts down its
//!   sending side, waits for the peer's EOF and prints `[netecho] source N bytes fnv1a64=H`
//!   (plus `[netecho] echoed M bytes fnv1a64=H` when the peer sent bytes back, e.g. an echo
//!   server). Exit code 1 on any error.
//! - `dhcp`: waits for an address and prints `[netecho] address A.B.C.D/P gateway G`.
//! - `idle`: prints `[netecho] idle` and sleeps forever (the host pings it).
//! - `bench stream-in|stream-out|rr|http PORT N`: one TCP workload of `./x bench net`, the
//!   same as `bench/c/tcp_bench.c` in the Linux guest (see `bench.rs`).
//! - `hold PORT N SECONDS`: accepts N connections, echoes one byte on each, prints
//!   `[netecho] holding N connections`, holds them idle for SECONDS and prints `[netecho] idle
//!   timer-interrupts T timer-runs R`: what an idle server with open connections costs.
//! - `ping-wait N`: brackets N ICMP echo requests with `[bench] mark start` / `[bench] mark
//!   end` and prints the counter frequency, the count and the ticks between the marks.
//!
//! The checksums, the pattern, the echo buffer and the argument parsing are in the
//! host-tested library (`src/lib.rs`); this file only drives sockets.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod bench;
mod window;

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use libos::net::{
    Event, Interest, IpAddr, Ipv4Addr, Poller, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use libos::{Errno, hal, println};
use netecho::{Command, EchoBuffer, Fnv1a64, USAGE, pattern};
use window::Window;

libos::main!(main);

/// Bytes per socket read or write.
const IO_SIZE: usize = 64 * 1024;
/// The listener's token in the TCP echo poller; connections use their slot index.
const LISTENER: usize = usize::MAX;
/// How long `source` waits without any progress before giving up.
const SOURCE_STALL: Duration = Duration::from_secs(30);

fn main() -> i32 {
    let args: Vec<&str> = libos::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(command) => command,
        Err(why) => {
            println!("netecho: {why}\n{USAGE}");
            return 2;
        }
    };
    let result = match command {
        Command::TcpEcho(port, window, announce) => tcp_echo(port, window, announce),
        Command::UdpEcho(port) => udp_echo(port),
        Command::Sink(port) => sink(port),
        Command::Source(address, bytes) => source(address, bytes),
        Command::Dhcp => dhcp(),
        Command::Idle => idle(),
        Command::PingWait(count) => ping_wait(count),
        Command::Bench(mode, port, n) => bench::run(mode, port, n),
        Command::Hold(port, connections, seconds) => hold(port, connections, seconds),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("[netecho] error {} ({e})", e.name());
            1
        }
    }
}

fn any_address(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// One echo connection.
struct EchoClient {
    stream: TcpStream,
    pending: EchoBuffer,
    /// The peer sent EOF: echo what is pending, then close.
    read_closed: bool,
    /// The interest registered with the poller (readable, writable).
    interest: (bool, bool),
}

/// A benchmark window over echo reads: opens at the first read that brings data, closes
/// after `rounds` more.
struct EchoWindow {
    rounds: u64,
    seen: u64,
    window: Option<Window>,
}

impl EchoWindow {
    /// Counts one read with data; true when the window is complete.
    fn count(&mut self) -> bool {
        if self.seen == 0 {
            println!("[bench] mark start");
            self.window = Some(Window::open());
        }
        self.seen += 1;
        if self.seen <= self.rounds {
            return false;
        }
        if let Some(window) = self.window.take() {
            window.close(self.rounds);
        }
        // Let the last echo leave the device before the VM powers off.
        libos::thread::sleep(Duration::from_millis(200));
        true
    }
}

fn tcp_echo(port: u16, window: Option<u64>, mut announce: Option<u64>) -> Result<(), Errno> {
    let mut window = window.map(|rounds| EchoWindow { rounds, seen: 0, window: None });
    let listener = TcpListener::bind(any_address(port))?;
    listener.set_nonblocking(true)?;
    let poller = Poller::new();
    poller.add(&listener, LISTENER, Interest::READABLE)?;
    println!("[netecho] tcp echo on port {port}");
    let mut clients: Vec<Option<EchoClient>> = Vec::new();
    let mut free_slots: Vec<usize> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut scratch = vec![0u8; IO_SIZE];
    loop {
        poller.wait(&mut events, None)?;
        for event in &events {
            if event.token == LISTENER {
                accept_echo_clients(&listener, &poller, &mut clients, &mut free_slots);
                let held = (clients.len() - free_slots.len()) as u64;
                if announce.is_some_and(|n| held >= n) {
                    println!("[netecho] holding {held} connections");
                    announce = None;
                }
                continue;
            }
            let token = event.token;
            let Some(Some(client)) = clients.get_mut(token) else { continue };
            let received = echo(client, event, &mut scratch);
            let mut keep = received.is_some() && !(client.read_closed && client.pending.is_empty());
            if received.is_some_and(|n| n > 0) && window.as_mut().is_some_and(EchoWindow::count) {
                return Ok(());
            }
            let wanted = (!client.read_closed && client.pending.accepts_input(), !client.pending.is_empty());
            if keep && wanted != client.interest {
                let interest = Interest { readable: wanted.0, writable: wanted.1 };
                keep = poller.modify(&client.stream, token, interest).is_ok();
                client.interest = wanted;
            }
            if !keep {
                if let Some(client) = clients[token].take() {
                    let _ = poller.delete(&client.stream);
                    free_slots.push(token);
                    // Dropping the stream closes it gracefully: echoed bytes still go out.
                }
            }
        }
    }
}

fn accept_echo_clients(
    listener: &TcpListener,
    poller: &Poller,
    clients: &mut Vec<Option<EchoClient>>,
    free_slots: &mut Vec<usize>,
) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            // EAGAIN: none left; anything else concerns one failed connection only.
            Err(_) => return,
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let token = free_slots.pop().unwrap_or_else(|| {
            clients.push(None);
            clients.len() - 1
        });
        if poller.add(&stream, token, Interest::READABLE).is_err() {
            free_slots.push(token);
            continue;
        }
        clients[token] = Some(EchoClient { stream, pending: EchoBuffer::new(), read_closed: false, interest: (true, false) });
    }
}

/// Reads what the connection has (while its pending output is under the limit) and writes
/// what the socket takes. The bytes read; `None` when the connection broke.
fn echo(client: &mut EchoClient, event: &Event, scratch: &mut [u8]) -> Option<usize> {
    let mut received = 0;
    if event.readable || event.hangup || event.error {
        while !client.read_closed && client.pending.accepts_input() {
            let room = (EchoBuffer::LIMIT - client.pending.len()).min(scratch.len());
            match client.stream.read(&mut scratch[..room]) {
                Ok(0) => client.read_closed = true,
                Ok(n) => {
                    client.pending.push(&scratch[..n]);
                    received += n;
                }
                Err(Errno::EAGAIN) => break,
                Err(_) => return None,
            }
        }
    }
    while !client.pending.is_empty() {
        match client.stream.write(client.pending.front()) {
            Ok(0) | Err(Errno::EAGAIN) => break,
            Ok(n) => client.pending.consume(n),
            Err(_) => return None,
        }
    }
    Some(received)
}

fn udp_echo(port: u16) -> Result<(), Errno> {
    let socket = UdpSocket::bind(any_address(port))?;
    println!("[netecho] udp echo on port {port}");
    let mut buf = vec![0u8; 65536];
    loop {
        let echoed = socket.recv_from(&mut buf).and_then(|(n, peer)| socket.send_to(&buf[..n], peer));
        if let Err(e) = echoed {
            // One bad datagram or peer (EMSGSIZE, EHOSTUNREACH, ...) does not stop the server.
            println!("[netecho] udp error {}", e.name());
        }
    }
}

fn sink(port: u16) -> Result<(), Errno> {
    let listener = TcpListener::bind(any_address(port))?;
    println!("[netecho] sink on port {port}");
    let mut buf = vec![0u8; IO_SIZE];
    loop {
        match listener.accept().and_then(|(stream, _peer)| drain(&stream, &mut buf)) {
            Ok((bytes, hash)) => println!("[netecho] sink {bytes} bytes fnv1a64={}", hash.hex()),
            Err(e) => println!("[netecho] sink error {}", e.name()),
        }
    }
}

/// Reads `stream` to EOF; the byte count and checksum.
fn drain(stream: &TcpStream, buf: &mut [u8]) -> Result<(u64, Fnv1a64), Errno> {
    let mut hash = Fnv1a64::new();
    let mut bytes = 0u64;
    loop {
        match stream.read(buf)? {
            0 => return Ok((bytes, hash)),
            n => {
                hash.update(&buf[..n]);
                bytes += n as u64;
            }
        }
    }
}

fn source(address: SocketAddr, total: u64) -> Result<(), Errno> {
    let stream = TcpStream::connect_timeout(&address, SOURCE_STALL)?;
    stream.set_nonblocking(true)?;
    let poller = Poller::new();
    poller.add(&stream, 0, Interest::BOTH)?;
    let mut events = Vec::new();
    let (mut sent_hash, mut echoed_hash) = (Fnv1a64::new(), Fnv1a64::new());
    let (mut generated, mut sent, mut echoed) = (0u64, 0u64, 0u64);
    let mut out = vec![0u8; IO_SIZE];
    let (mut out_start, mut out_end) = (0usize, 0usize);
    let mut inbuf = vec![0u8; IO_SIZE];
    let mut write_closed = total == 0;
    let mut peer_closed = false;
    if write_closed {
        stream.shutdown(Shutdown::Write)?;
        poller.modify(&stream, 0, Interest::READABLE)?;
    }
    while !peer_closed {
        if poller.wait(&mut events, Some(SOURCE_STALL))? == 0 {
            println!("[netecho] source: no progress for {} s ({sent} of {total} bytes sent)", SOURCE_STALL.as_secs());
            return Err(Errno::ETIMEDOUT);
        }
        // Read whatever came back first, so an echoing peer never blocks on us.
        loop {
            match stream.read(&mut inbuf) {
                Ok(0) => {
                    peer_closed = true;
                    break;
                }
                Ok(n) => {
                    echoed_hash.update(&inbuf[..n]);
                    echoed += n as u64;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
        while !write_closed {
            if out_start == out_end {
                let n = (total - generated).min(IO_SIZE as u64) as usize;
                pattern::fill(&mut out[..n], generated);
                sent_hash.update(&out[..n]);
                generated += n as u64;
                (out_start, out_end) = (0, n);
            }
            match stream.write(&out[out_start..out_end]) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => {
                    out_start += n;
                    sent += n as u64;
                }
                Err(e) => return Err(e),
            }
            if sent == total {
                stream.shutdown(Shutdown::Write)?;
                poller.modify(&stream, 0, Interest::READABLE)?;
                write_closed = true;
            }
        }
    }
    if !write_closed {
        println!("[netecho] source: the peer closed after {sent} of {total} bytes");
        return Err(Errno::EPIPE);
    }
    println!("[netecho] source {sent} bytes fnv1a64={}", sent_hash.hex());
    if echoed > 0 {
        println!("[netecho] echoed {echoed} bytes fnv1a64={}", echoed_hash.hex());
    }
    Ok(())
}

fn dhcp() -> Result<(), Errno> {
    libos::net::wait_for_address(Duration::from_secs(30))?;
    for interface in libos::net::interfaces() {
        let Some((address, prefix)) = interface.addresses.iter().find(|(a, _)| a.is_ipv4()) else { continue };
        match interface.gateway {
            Some(gateway) => println!("[netecho] address {address}/{prefix} gateway {gateway}"),
            None => println!("[netecho] address {address}/{prefix} gateway none"),
        }
        return Ok(());
    }
    Err(Errno::EADDRNOTAVAIL)
}

fn hold(port: u16, connections: u64, seconds: u64) -> Result<(), Errno> {
    let listener = TcpListener::bind_with_backlog(any_address(port), connections as usize)?;
    println!("[netecho] hold on port {port}");
    let mut held = Vec::new();
    let mut byte = [0u8; 1];
    for _ in 0..connections {
        let (stream, _) = listener.accept()?;
        stream.read_exact(&mut byte)?;
        stream.write_all(&byte)?;
        held.push(stream);
    }
    // Let the last ACKs and any delayed-ACK timer run out before counting.
    libos::thread::sleep(Duration::from_millis(500));
    let runs = || libos::net::interfaces().first().map_or(0, |nic| nic.stats.timer_runs);
    let (interrupts, timer_runs) = (hal::irq::timer_interrupt_count(), runs());
    println!("[netecho] holding {connections} connections");
    libos::thread::sleep(Duration::from_secs(seconds));
    let (interrupts, timer_runs) = (hal::irq::timer_interrupt_count() - interrupts, runs() - timer_runs);
    println!("[netecho] idle timer-interrupts {interrupts} timer-runs {timer_runs}");
    drop(held);
    libos::thread::sleep(Duration::from_millis(200));
    Ok(())
}

fn idle() -> Result<(), Errno> {
    println!("[netecho] idle");
    loop {
        // The stack answers pings from its interrupt path; this thread has nothing to do.
        libos::thread::sleep(Duration::from_secs(3600));
    }
}

/// ICMP echo requests the first interface has received.
fn icmp_echo_requests() -> Result<u64, Errno> {
    let interfaces = libos::net::interfaces();
    Ok(interfaces.first().ok_or(Errno::ENODEV)?.stats.icmp_echo_requests)
}

/// One line of NIC counters (what a benchmark window cost besides instructions).
fn print_nic_stats() {
    if let Some(nic) = libos::net::interfaces().first() {
        let s = nic.stats;
        println!(
            "[netecho] nic rx {} tx {} rx-dropped {} tx-dropped {} interrupts {} notifications {} timer-runs {}",
            s.rx_packets, s.tx_packets, s.rx_dropped, s.tx_dropped, s.interrupts, s.notifications, s.timer_runs
        );
    }
}

fn ping_wait(count: u64) -> Result<(), Errno> {
    // Count from the requests seen so far: a ping the host sent to see the guest is up does
    // not belong to the window.
    let base = icmp_echo_requests()?;
    println!("[bench] mark start");
    // The window runs from the first request of the flood to the last (as
    // bench/c/icmp_echo.c measures it), waiting without a timer: under `-icount sleep=off`
    // the idle time between packets then costs no virtual time.
    libos::net::wait_for_echo_requests(base + 1, None)?;
    let window = Window::open();
    let seen = libos::net::wait_for_echo_requests(base + count, None)?.saturating_sub(base + 1);
    window.close(seen);
    // The reply to the last request is on the device's queue, not necessarily on the wire:
    // give the device time to send it before the VM powers off.
    libos::thread::sleep(Duration::from_millis(200));
    Ok(())
}
