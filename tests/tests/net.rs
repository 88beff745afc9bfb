//! The guest network stack seen from the host (issue 13), on both architectures, against the
//! guest apps `apps/netecho` and `apps/httpd`:
//!
//! - over a tap in a network namespace made for the test (guest 10.0.2.15, host 10.0.2.1):
//!   ping of 1 to 1472 bytes with every reply counted; ping6 to the MAC-derived link-local
//!   address; 64 MiB of TCP into the guest and 64 MiB out of it, byte-identical (FNV-1a 64 on
//!   both ends); UDP echo of 100 datagrams of 1 to 1472 bytes; 1000 concurrent HTTP
//!   connections to httpd plus a 404; a connection reset in the middle of a transfer (the
//!   guest reports it and serves the next one); 8 MiB of TCP through 5% loss each way;
//! - over QEMU's user network: the DHCP lease (open and restricted slirp), a TCP echo through a
//!   host port forward, and curl through a forward;
//! - the NIC on every virtio transport (modern PCI on q35 and aarch64 `virt`, legacy
//!   virtio-mmio);
//! - the harness itself: namespaces go with their guest, the loss test's routed peer.
//!
//! Every wait is bounded (a stalled transfer fails after 30 s without progress, a guest that
//! never answers after a minute); every guest is killed and every namespace deleted when its
//! test ends, also when an assertion fails (the harness's handles kill and delete on drop).
//! The whole file took 27 s here (2 cores, TCG, both arches) once the guest side passed.
//!
//! The data pattern and checksum are the contract with `netecho`: byte `i` of a stream is
//! `(i % 251) ^ (i / 4096)` (as bytes), `[netecho] sink N bytes fnv1a64=HHHHHHHHHHHHHHHH`
//! reports the FNV-1a 64 of what a sink connection received, and `[netecho] source N bytes
//! fnv1a64=H` what a source sent (once the host closed its end; then it exits 0).

use libos_tests::{Boot, Started, arches, free_port, netns};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use xtask::arch::Arch;
use xtask::net::{Forward, Protocol};
use xtask::netns::{GUEST_IP, HOST_IP, Netns, parse_ping};
use xtask::qemu::{Machine, VirtioTransport};

/// Byte `i` of every test stream.
fn pattern(i: u64) -> u8 {
    ((i % 251) as u8) ^ ((i / 4096) as u8)
}

/// `len` bytes of the stream starting at byte `start`.
fn pattern_chunk(start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(start + i)).collect()
}

/// FNV-1a 64, fed in pieces.
#[derive(Clone, Copy)]
struct Fnv1a64(u64);

impl Fnv1a64 {
    fn new() -> Fnv1a64 {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// As `netecho` prints it: 16 lowercase hex digits.
    fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The FNV-1a 64 of the first `len` bytes of the stream.
fn pattern_hash(len: u64) -> String {
    let mut hash = Fnv1a64::new();
    let mut at = 0;
    while at < len {
        let n = (len - at).min(1 << 16) as usize;
        hash.update(&pattern_chunk(at, n));
        at += n as u64;
    }
    hash.hex()
}

/// Writes the first `len` bytes of the stream to `stream`, all within `limit` (a socket
/// timeout alone bounds each call, not a transfer that trickles). A stall or the limit is an
/// error that says how far it got.
fn send_pattern(stream: &mut TcpStream, len: u64, limit: Duration) -> std::io::Result<()> {
    const STALL: Duration = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    stream.set_write_timeout(Some(STALL))?;
    let mut at = 0;
    while at < len {
        let n = (len - at).min(1 << 16) as usize;
        let timed_out = |what: String, at: u64| std::io::Error::new(ErrorKind::TimedOut, format!("{what} after {at} of {len} bytes"));
        if let Err(e) = stream.write_all(&pattern_chunk(at, n)) {
            return Err(match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => timed_out(format!("no progress for {STALL:?} (the peer stopped reading)"), at),
                _ => std::io::Error::new(e.kind(), format!("{e} after {at} of {len} bytes")),
            });
        }
        at += n as u64;
        if Instant::now() > deadline && at < len {
            return Err(timed_out(format!("not done within {limit:?}"), at));
        }
    }
    Ok(())
}

const MIB: u64 = 1 << 20;
/// How long the guest may take to boot and bring its network up (TCG, a loaded machine).
const UP: Duration = Duration::from_secs(60);
/// Bound of one big transfer under TCG (64 MiB at a few MiB/s on aarch64).
const TRANSFER: Duration = Duration::from_secs(240);

/// Connects to `addr` (from the calling thread's namespace), retrying until the guest listens
/// or `UP` passed.
fn connect_when_up(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + UP;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() > deadline => {
                return Err(std::io::Error::new(e.kind(), format!("connecting to {addr}: still {e} after {UP:?}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn guest(port: u16) -> SocketAddr {
    format!("{GUEST_IP}:{port}").parse().expect("a socket address")
}

/// A `netecho` guest on a tap, given `args`.
fn netecho_on_tap(arch: Arch, args: &[&str]) -> Started {
    Boot::app("netecho").args(args).net_tap().memory("128M").timeout(Duration::from_secs(600)).start(arch)
}

/// Pings the guest from its namespace until it answers (it is booting), bounded by `UP`.
fn wait_for_ping(started: &Started) {
    let deadline = Instant::now() + UP;
    while Instant::now() < deadline {
        let up = started.netns().command("ping").args(["-c", "1", "-W", "1", GUEST_IP]).output().is_ok_and(|o| o.status.success());
        if up {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    started.fail(&format!("the guest did not answer ping within {UP:?}"));
}

/// Sends `len` bytes of the pattern to `netecho sink` at `port` from the boot's namespace and
/// checks the guest's report.
fn sink_transfer(started: &Started, port: u16, len: u64) {
    sink_transfer_from(started, started.netns(), port, len);
}

/// [`sink_transfer`] from the namespace `client`.
fn sink_transfer_from(started: &Started, client: &Netns, port: u16, len: u64) {
    let sent = client.run(move || -> std::io::Result<TcpStream> {
        let mut stream = connect_when_up(guest(port))?;
        send_pattern(&mut stream, len, TRANSFER)?;
        stream.shutdown(Shutdown::Write)?;
        Ok(stream)
    });
    // Kept open until the guest reported: the FIN ends the transfer, closing is the guest's turn.
    let _stream = match sent.unwrap_or_else(|e| panic!("{e}")) {
        Ok(stream) => stream,
        Err(e) => started.fail(&format!("sending {len} bytes to the sink: {e}")),
    };
    let report = started.line_after(&format!("[netecho] sink {len} bytes fnv1a64="), TRANSFER);
    assert_eq!(report.trim(), pattern_hash(len), "the guest received other bytes than were sent ({len} bytes)");
}

#[test]
fn ping_over_tap_gets_every_reply() {
    for arch in arches() {
        let started = netecho_on_tap(arch, &["idle"]);
        wait_for_ping(&started);
        for size in [1, 512, 1024, 1472] {
            let output = started
                .netns()
                .output("ping", &["-c", "20", "-i", "0.01", "-s", &size.to_string(), "-W", "5", "-w", "60", GUEST_IP])
                .unwrap_or_else(|e| started.fail(&format!("{size}-byte ping: {e}")));
            let summary = parse_ping(&output).unwrap_or_else(|| started.fail(&format!("no ping summary:\n{output}")));
            if (summary.transmitted, summary.received) != (20, 20) {
                started.fail(&format!("{size}-byte ping: {} of {} replies\n{output}", summary.received, summary.transmitted));
            }
        }
        started.stop();
    }
}

/// The guest's IPv6 link-local address, derived from its MAC (`xtask::net::GUEST_MAC`,
/// 52:54:00:12:34:56) by modified EUI-64: the universal/local bit flipped, ff:fe in the middle.
const GUEST_LINK_LOCAL: &str = "fe80::5054:ff:fe12:3456";

#[test]
fn ping6_reaches_the_link_local_address() {
    for arch in arches() {
        let started = netecho_on_tap(arch, &["idle"]);
        wait_for_ping(&started);
        // The host's own link-local address on the tap passes duplicate detection first
        // (about a second after the link came up): until then ping6 cannot send.
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = format!("{GUEST_LINK_LOCAL}%{}", xtask::netns::TAP);
        let output = loop {
            let output = started.netns().output("ping", &["-6", "-c", "5", "-i", "0.05", "-W", "5", "-w", "20", &target]);
            match output {
                Ok(output) => break output,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
                Err(e) => started.fail(&format!("ping6 {target}: {e}")),
            }
        };
        let summary = parse_ping(&output).unwrap_or_else(|| started.fail(&format!("no ping summary:\n{output}")));
        if summary.received != 5 {
            started.fail(&format!("ping6 {target}: {} of 5 replies", summary.received));
        }
        started.stop();
    }
}

/// The NIC works on each transport libos drives: modern virtio-pci (q35, aarch64 `virt` with
/// PCIe) and legacy virtio-mmio version 1 (the other tests use virtio-mmio version 2).
#[test]
fn every_transport_carries_pings() {
    let mut cases = Vec::new();
    for arch in arches() {
        match arch {
            Arch::X86_64 => cases.extend([(arch, Machine::Q35, None), (arch, Machine::Microvm, Some(VirtioTransport::MmioLegacy))]),
            Arch::Aarch64 => cases.extend([
                (arch, Machine::VirtGicv3, Some(VirtioTransport::Pci)),
                (arch, Machine::VirtGicv3, Some(VirtioTransport::MmioLegacy)),
            ]),
        }
    }
    for (arch, machine, transport) in cases {
        let mut boot = Boot::app("netecho").args(&["idle"]).net_tap().memory("128M").machine(machine).timeout(Duration::from_secs(300));
        if let Some(transport) = transport {
            boot = boot.transport(transport);
        }
        let started = boot.start(arch);
        wait_for_ping(&started);
        let output = started.netns().output("ping", &["-c", "5", "-i", "0.05", "-W", "5", "-w", "30", GUEST_IP]);
        let output = output.unwrap_or_else(|e| started.fail(&format!("{machine:?} {transport:?}: {e}")));
        let summary = parse_ping(&output).unwrap_or_else(|| started.fail(&format!("no ping summary:\n{output}")));
        if summary.received != 5 {
            started.fail(&format!("{machine:?} {transport:?}: {} of 5 replies", summary.received));
        }
        started.stop();
    }
}

#[test]
fn tcp_64_mib_into_the_guest_is_byte_identical() {
    for arch in arches() {
        let started = netecho_on_tap(arch, &["sink", "5001"]);
        sink_transfer(&started, 5001, 64 * MIB);
        started.stop();
    }
}

#[test]
fn tcp_64_mib_out_of_the_guest_is_byte_identical() {
    const LEN: u64 = 64 * MIB;
    for arch in arches() {
        // Listen before the guest starts: it connects as soon as its network is up.
        let ns = netns();
        let listener = ns
            .run(|| std::net::TcpListener::bind((HOST_IP, 5002)))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("listening on {HOST_IP}:5002: {e}"));
        let target = format!("{HOST_IP}:5002");
        let started = Boot::app("netecho")
            .args(&["source", &target, &LEN.to_string()])
            .net_tap_in(&ns)
            .memory("128M")
            .timeout(Duration::from_secs(600))
            .start(arch);
        listener.set_nonblocking(true).expect("non-blocking listener");
        let deadline = Instant::now() + UP;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => started.fail(&format!("the guest did not connect to {target}: {e}")),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        let (mut received, mut hash, mut first_bad) = (0u64, Fnv1a64::new(), None);
        let mut buffer = vec![0u8; 1 << 16];
        let started_at = Instant::now();
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if first_bad.is_none()
                        && let Some(at) = (0..n).find(|&i| buffer[i] != pattern(received + i as u64))
                    {
                        first_bad = Some(received + at as u64);
                    }
                    hash.update(&buffer[..n]);
                    received += n as u64;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    started.fail(&format!("the guest sent nothing for 30 s after {received} of {LEN} bytes"))
                }
                Err(e) => started.fail(&format!("reading from the guest after {received} bytes: {e}")),
            }
            if started_at.elapsed() > TRANSFER {
                started.fail(&format!("only {received} bytes within {TRANSFER:?}"));
            }
        }
        assert_eq!(received, LEN, "{arch}: the guest sent {received} bytes");
        assert_eq!(first_bad, None, "{arch}: the first byte that differs from the pattern");
        assert_eq!(hash.hex(), pattern_hash(LEN));
        // Our EOF ends the guest's wait: it reports what it sent and exits 0.
        drop(stream);
        let report = started.line_after(&format!("[netecho] source {LEN} bytes fnv1a64="), Duration::from_secs(60));
        assert_eq!(report.trim(), pattern_hash(LEN), "{arch}: the guest's own checksum of what it sent");
        started.finish().exits_with(0);
    }
}

#[test]
fn udp_echo_returns_every_datagram() {
    for arch in arches() {
        let started = netecho_on_tap(arch, &["udp", "7"]);
        let result = started.netns().run(|| -> Result<(), String> {
            // Not connected: a reply from another address or port is reported, not filtered.
            let socket = UdpSocket::bind((HOST_IP, 0)).map_err(|e| e.to_string())?;
            let to = guest(7);
            let receive = |buffer: &mut [u8], what: &str| -> Result<usize, String> {
                let (n, from) = socket.recv_from(buffer).map_err(|e| match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("{what}: no echo (timed out)"),
                    _ => format!("{what}: {e}"),
                })?;
                if from != to {
                    return Err(format!("{what}: the echo came from {from}, not {to}"));
                }
                Ok(n)
            };
            // Until the guest answers (it is booting, then resolves our MAC), probes may go
            // unanswered; after the first answer, every datagram must come back.
            socket.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + UP;
            let mut buffer = vec![0u8; 2048];
            loop {
                socket.send_to(b"probe", to).map_err(|e| e.to_string())?;
                match receive(&mut buffer, "a probe") {
                    Ok(n) if &buffer[..n] == b"probe" => break,
                    Ok(n) => return Err(format!("the probe came back as {n} other bytes")),
                    Err(e) if Instant::now() > deadline || !e.ends_with("(timed out)") => return Err(format!("{e} within {UP:?}")),
                    Err(_) => {}
                }
            }
            // Late duplicates of the probes must not be taken for answers below.
            std::thread::sleep(Duration::from_millis(500));
            socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            while socket.recv_from(&mut buffer).is_ok() {}
            socket.set_nonblocking(false).map_err(|e| e.to_string())?;
            socket.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
            for i in 0..100u64 {
                let size = 1 + (i * 1471 / 99) as usize;
                let datagram = pattern_chunk(i * 7919, size);
                socket.send_to(&datagram, to).map_err(|e| e.to_string())?;
                let n = receive(&mut buffer, &format!("datagram {i} ({size} bytes)"))?;
                if buffer[..n] != datagram[..] {
                    return Err(format!("datagram {i} ({size} bytes) came back as {n} different bytes"));
                }
            }
            Ok(())
        });
        if let Err(e) = result.unwrap_or_else(|e| panic!("{e}")) {
            started.fail(&e);
        }
        started.stop();
    }
}

/// The lease from slirp's DHCP server. Unrestricted, its offer names the gateway; restricted
/// (what every other user-network boot uses, so nothing can leave the machine) it names none,
/// which this also checks.
#[test]
fn dhcp_on_the_user_network() {
    for arch in arches() {
        // netecho dhcp sends nothing but DHCP to slirp: safe on the open network.
        Boot::app("netecho")
            .args(&["dhcp"])
            .net_user_open(&[])
            .timeout(Duration::from_secs(120))
            .on(arch)
            .prints("[netecho] address 10.0.2.15/24 gateway 10.0.2.2\n")
            .exits_with(0);
        Boot::app("netecho")
            .args(&["dhcp"])
            .net_user(&[])
            .timeout(Duration::from_secs(120))
            .on(arch)
            .prints("[netecho] address 10.0.2.15/24 gateway none\n")
            .exits_with(0);
    }
}

/// Echoes `len` bytes of the pattern through `stream`: a writer thread sends while this one
/// reads (neither side may wait for the other's buffers to drain); the first byte was echoed
/// already (the readiness probe).
fn echo_through(mut stream: TcpStream, len: u64) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut at = 1;
        while at < len {
            let n = (len - at).min(1 << 14) as usize;
            writer.write_all(&pattern_chunk(at, n))?;
            at += n as u64;
        }
        Ok(())
    });
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let mut received = 1u64;
    let mut buffer = vec![0u8; 1 << 16];
    while received < len {
        let n = stream.read(&mut buffer).map_err(|e| format!("after {received} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("the echo ended after {received} of {len} bytes"));
        }
        if let Some(at) = (0..n).find(|&i| buffer[i] != pattern(received + i as u64)) {
            return Err(format!("byte {} came back different", received + at as u64));
        }
        received += n as u64;
    }
    sender.join().map_err(|_| "the sender panicked")?.map_err(|e| format!("sending: {e}"))
}

#[test]
fn tcp_echo_through_a_user_network_forward() {
    for arch in arches() {
        let port = free_port();
        let started = Boot::app("netecho")
            .args(&["tcp", "7"])
            .net_user(&[Forward::new(Protocol::Tcp, port, 7)])
            .memory("128M")
            .timeout(Duration::from_secs(300))
            .start(arch);
        // slirp accepts on the host port before the guest listens, then drops the connection:
        // the guest is up once a probe byte comes back.
        let deadline = Instant::now() + UP;
        let stream = loop {
            let attempt = (|| -> std::io::Result<TcpStream> {
                let mut stream = TcpStream::connect(("127.0.0.1", port))?;
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                stream.write_all(&[pattern(0)])?;
                let mut byte = [0u8];
                stream.read_exact(&mut byte)?;
                if byte[0] != pattern(0) {
                    return Err(std::io::Error::other(format!("the probe came back as {:#x}", byte[0])));
                }
                Ok(stream)
            })();
            match attempt {
                Ok(stream) => break stream,
                Err(e) if Instant::now() > deadline => started.fail(&format!("no echo through 127.0.0.1:{port} within {UP:?}: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        };
        if let Err(e) = echo_through(stream, MIB) {
            started.fail(&format!("1 MiB echo through 127.0.0.1:{port}: {e}"));
        }
        started.stop();
    }
}

#[test]
fn a_reset_mid_transfer_is_reported_and_the_sink_goes_on() {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    for arch in arches() {
        let started = netecho_on_tap(arch, &["sink", "5001"]);
        let reset = started.netns().run(|| -> std::io::Result<()> {
            let mut stream = connect_when_up(guest(5001))?;
            send_pattern(&mut stream, MIB, TRANSFER)?;
            // SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
            setsockopt(&stream, Linger, &nix::libc::linger { l_onoff: 1, l_linger: 0 }).map_err(std::io::Error::from)?;
            drop(stream);
            Ok(())
        });
        if let Err(e) = reset.unwrap_or_else(|e| panic!("{e}")) {
            started.fail(&format!("the first connection: {e}"));
        }
        started.line_after("[netecho] sink error ECONNRESET", Duration::from_secs(60));
        sink_transfer(&started, 5001, 1024);
        started.stop();
    }
}

/// An idle server holding open connections costs nothing: over 3 seconds with 50 established,
/// idle connections (no keep-alive), the guest takes the one timer interrupt of its own 3-second
/// sleep (one more is tolerated for a tick already armed when the count started) and its
/// network thread wakes at most once for a TCP timer: the retransmission of the last echo when
/// the host's ACK of it comes late (seen once in a fresh-clone CI run with the host loaded by
/// the other tests of this file). A stack that polled its sockets, or re-armed a timer per
/// connection, would take hundreds.
#[test]
fn an_idle_server_with_open_connections_takes_no_timer_interrupts() {
    const CONNECTIONS: usize = 50;
    for arch in arches() {
        let started = netecho_on_tap(arch, &["hold", "7", &CONNECTIONS.to_string(), "3"]);
        let held = started.netns().run(|| -> std::io::Result<Vec<TcpStream>> {
            let mut held = Vec::new();
            for i in 0..CONNECTIONS {
                let mut stream = if i == 0 { connect_when_up(guest(7))? } else { TcpStream::connect_timeout(&guest(7), UP)? };
                stream.set_read_timeout(Some(UP))?;
                let mut byte = [i as u8];
                stream.write_all(&byte)?;
                stream.read_exact(&mut byte)?;
                if byte[0] != i as u8 {
                    return Err(std::io::Error::other(format!("connection {i} echoed {}", byte[0])));
                }
                held.push(stream);
            }
            Ok(held)
        });
        let held = match held.unwrap_or_else(|e| panic!("{e}")) {
            Ok(held) => held,
            Err(e) => started.fail(&format!("opening the connections: {e}")),
        };
        let report = started.line_after("[netecho] idle timer-interrupts ", Duration::from_secs(60));
        let numbers: Vec<u64> = report.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        match numbers[..] {
            [interrupts, runs] if interrupts <= 3 && runs <= 1 => {}
            _ => started.fail(&format!("an idle server with {CONNECTIONS} connections took `timer-interrupts {report}` in 3 s")),
        }
        drop(held);
        started.stop();
    }
}

/// 5% of the packets between host and guest are lost, each way: the host sends from a peer
/// namespace and the guest's namespace forwards, dropping 5% at random (nftables `numgen` in the
/// forward hook; `tc netem` is missing from some kernels, this one's included, and a drop of a
/// packet the sending namespace made itself would be reported back to its TCP, not lost). TCP
/// on both ends recovers and the data arrives intact. 8 MiB rather than 64 bounds the time under
/// TCG, where every loss can cost a retransmission timeout.
#[test]
fn tcp_survives_five_percent_loss() {
    const LOSS: &str = "table ip libos_loss {
        chain forward {
            type filter hook forward priority 0; policy accept;
            counter
            numgen random mod 100 < 5 counter drop
        }
    }";
    for arch in arches() {
        let started = netecho_on_tap(arch, &["sink", "5001"]);
        let peer = started.netns().peer("test-peer").unwrap_or_else(|e| started.fail(&format!("creating the peer namespace: {e}")));
        wait_for_ping(&started);
        let nft = started.netns().command("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().and_then(|mut child| {
            child.stdin.take().expect("piped").write_all(LOSS.as_bytes())?;
            child.wait()
        });
        if !nft.as_ref().is_ok_and(|s| s.success()) {
            started.fail(&format!("loading the loss rule with nft: {nft:?}"));
        }
        sink_transfer_from(&started, &peer, 5001, 8 * MIB);
        // The rule really dropped packets (else this test proved nothing).
        let counters = started.netns().output("nft", &["list", "table", "ip", "libos_loss"]).unwrap_or_else(|e| started.fail(&e.to_string()));
        // Both sides send TCP segments of up to 64 KiB that the devices cut (or merge) at the
        // edges (segmentation offload), so the namespace forwards, and drops, whole large
        // segments: bursts of up to 45 wire-sized ones, harder on recovery than single losses.
        let packets: Vec<u64> = counters
            .split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        let [forwarded, dropped] = packets[..] else { started.fail(&format!("no counters in {counters}")) };
        assert!(
            dropped >= 5 && dropped * 100 >= forwarded,
            "{arch}: {dropped} of {forwarded} forwarded packets dropped during 8 MiB (expected about 5%)"
        );
        drop(peer);
        started.stop();
    }
}

/// The body of `apps/httpd/www/index.html` (the page httpd serves from its initial files).
fn index_html() -> Vec<u8> {
    let path = xtask::root().join("apps/httpd/www/index.html");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Reads one HTTP/1.1 response (headers, then a `Content-Length` body, or up to EOF) and
/// returns its status code and body.
fn read_response(stream: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buffer).map_err(|e| format!("reading the headers: {e}"))?;
        if n == 0 {
            return Err(format!("the connection ended inside the headers: {:?}", String::from_utf8_lossy(&data)));
        }
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = data[header_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buffer).map_err(|e| format!("reading the body: {e}"))?;
                if n == 0 {
                    return Err(format!("the body ended after {} of {length} bytes", body.len()));
                }
                body.extend_from_slice(&buffer[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body).map_err(|e| format!("reading the body: {e}"))?;
        }
    }
    Ok((status, body))
}

fn get(stream: &mut TcpStream, path: &str) -> Result<(u16, Vec<u8>), String> {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| format!("sending GET {path}: {e}"))?;
    read_response(stream)
}

/// Raises this process's open-file limit to at least `n` (1000 sockets need more than the
/// usual 1024 with everything else a test process holds).
fn raise_file_limit(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < n {
        setrlimit(Resource::RLIMIT_NOFILE, n.min(hard).max(soft), hard).expect("setrlimit");
    }
}

/// Opens `count` connections to the guest's port 80 from `threads` threads in the namespace;
/// once all are open (a barrier), each thread sends `GET path` on each of its connections and
/// checks for status 200 and the body `expected`.
fn concurrent_gets(netns: &Netns, count: usize, threads: usize, path: &'static str, expected: &[u8]) -> Result<(), String> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let mut handles = Vec::new();
    for t in 0..threads {
        let barrier = barrier.clone();
        let expected = expected.to_vec();
        let share = count / threads + usize::from(t < count % threads);
        handles.push(netns.spawn(move || -> Result<(), String> {
            let mut streams = Vec::new();
            let mut error = None;
            for _ in 0..share {
                match TcpStream::connect_timeout(&guest(80), Duration::from_secs(60)) {
                    Ok(stream) => streams.push(stream),
                    Err(e) => {
                        error = Some(format!("connection {} of thread {t}: {e}", streams.len()));
                        break;
                    }
                }
            }
            // Every thread reaches the barrier, also after an error, or the others would hang.
            barrier.wait();
            if let Some(error) = error {
                return Err(error);
            }
            for (i, stream) in streams.iter_mut().enumerate() {
                stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
                let (status, body) = get(stream, path).map_err(|e| format!("connection {i} of thread {t}: {e}"))?;
                if status != 200 || body != expected {
                    return Err(format!("connection {i} of thread {t}: GET {path}: status {status}, {} body bytes (expected 200 and {} bytes)", body.len(), expected.len()));
                }
            }
            Ok(())
        }).map_err(|e| e.to_string())?);
    }
    let mut errors = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

#[test]
fn httpd_serves_1000_concurrent_connections() {
    let index = index_html();
    raise_file_limit(4096);
    for arch in arches() {
        // 1000 connections with the default TCP buffers need a few hundred MiB (at 256 MiB
        // the network thread ran out of heap).
        let started = Boot::app("httpd").args(&["--port", "80"]).net_tap().memory("1G").timeout(Duration::from_secs(600)).start(arch);
        started.line_after("[httpd] listening on port 80", UP);
        if let Err(e) = concurrent_gets(started.netns(), 1000, 8, "/index.html", &index) {
            started.fail(&format!("1000 concurrent GETs:\n{e}"));
        }
        let missing = started.netns().run(|| -> Result<u16, String> {
            let mut stream = TcpStream::connect_timeout(&guest(80), Duration::from_secs(30)).map_err(|e| e.to_string())?;
            stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
            get(&mut stream, "/no-such-page.html").map(|(status, _)| status)
        });
        match missing.unwrap_or_else(|e| panic!("{e}")) {
            Ok(404) => {}
            Ok(status) => started.fail(&format!("GET /no-such-page.html: status {status}, expected 404")),
            Err(e) => started.fail(&format!("GET /no-such-page.html: {e}")),
        }
        started.stop();
    }
}

#[test]
fn curl_fetches_a_page_through_a_user_network_forward() {
    let index = index_html();
    for arch in arches() {
        let port = free_port();
        let started = Boot::app("httpd")
            .args(&["--port", "80"])
            .net_user(&[Forward::new(Protocol::Tcp, port, 80)])
            .memory("128M")
            .timeout(Duration::from_secs(300))
            .start(arch);
        started.line_after("[httpd] listening on port 80", UP);
        let url = format!("http://127.0.0.1:{port}/index.html");
        let output = std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60", "--write-out", "\n%{http_code}", &url])
            .output()
            .unwrap_or_else(|e| started.fail(&format!("cannot run curl: {e}")));
        let stdout = output.stdout;
        let split = stdout.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        let (body, code) = (&stdout[..split], String::from_utf8_lossy(&stdout[split..]).trim().to_string());
        if !output.status.success() || code != "200" || body != index {
            started.fail(&format!(
                "curl {url}: {}, status {code}, {} body bytes (expected 200 and {}): {}",
                output.status,
                body.len(),
                index.len(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        started.stop();
    }
}

/// The harness deletes a boot's namespace with it, whatever the guest did (this does not need
/// the guest's network: it holds before the guest side exists).
#[test]
fn tap_namespace_is_deleted_with_the_guest() {
    let arch = arches()[0];
    let started = Boot::app("selftest").args(&["hang"]).net_tap().start(arch);
    let name = started.netns().name.clone();
    assert!(xtask::netns::list().contains(&name), "namespace {name} exists while the guest runs");
    std::thread::sleep(Duration::from_millis(300));
    let booted = started.stop();
    drop(booted);
    assert!(!xtask::netns::list().contains(&name), "namespace {name} was not deleted");
    // A guest whose handle is dropped mid-run (a failed assertion) is killed, its namespace deleted.
    let started = Boot::app("selftest").args(&["hang"]).net_tap().start(arch);
    let name = started.netns().name.clone();
    drop(started);
    assert!(!xtask::netns::list().contains(&name), "namespace {name} outlived a dropped boot");
}

/// The peer namespace of the loss test reaches the guest's namespace through its veth, and both
/// are deleted when dropped (no guest needed).
#[test]
fn a_peer_namespace_is_routed_and_deleted() {
    let ns = netns();
    let peer = ns.peer("test-peer").unwrap_or_else(|e| panic!("{e}"));
    let route = peer.output("ip", &["route", "get", GUEST_IP]).unwrap_or_else(|e| panic!("{e}"));
    assert!(route.contains("via 10.0.3.1 dev veth-p"), "{route}");
    peer.output("ping", &["-c", "1", "-W", "5", "10.0.3.1"]).unwrap_or_else(|e| panic!("{e}"));
    let forwarding = ns.output("cat", &["/proc/sys/net/ipv4/ip_forward"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forwarding.trim(), "1");
    let names = [ns.name.clone(), peer.name.clone()];
    drop(peer);
    drop(ns);
    let left = xtask::netns::list();
    assert!(names.iter().all(|n| !left.contains(n)), "{names:?} still in {left:?}");
}
