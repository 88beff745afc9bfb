//! # netecho: the pure half of a TCP/UDP test and benchmark tool for libos
//!
//! The guest binary (`main.rs`) drives sockets; what it computes lives here, free of libos and
//! I/O, so the host's `cargo test -p netecho` checks it, and host-side tools can produce the
//! same numbers:
//!
//! - [`pattern`]: the test byte stream `source` sends (byte `i` is
//!   `(i % 251) as u8 ^ (i / 4096) as u8`: period 251 against 4 KiB pages, so a lost, repeated
//!   or reordered segment changes the checksum);
//! - [`Fnv1a64`]: the checksum `sink` and `source` print;
//! - [`EchoBuffer`]: one echo connection's pending output, bounded so a client that sends but
//!   does not read cannot exhaust memory;
//! - [`Command`]: the command line.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use core::net::SocketAddr;

/// The usage text printed with a command-line error.
pub const USAGE: &str = "usage: netecho tcp PORT [ROUNDS [CONNECTIONS]] | udp PORT | sink PORT | source ADDR:PORT BYTES | dhcp | idle | ping-wait N | bench stream-in|stream-out|rr|http PORT N | hold PORT CONNECTIONS SECONDS";

/// The TCP workloads of `./x bench net`, the same as `bench/c/tcp_bench.c`'s modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// N bytes come in; the window runs from the first byte to EOF.
    StreamIn,
    /// N bytes go out, then a shutdown; the window runs from the accept to the peer's EOF.
    StreamOut,
    /// N + 1 one-byte round trips; the window spans N of them.
    RoundTrips,
    /// N + 1 `GET`s on one connection, each answered with [`HTTP_BODY`] bytes.
    Http,
}

/// The body size of the `http` workload's answers.
pub const HTTP_BODY: usize = 4096;
/// The head of the `http` workload's answers (as `tcp_bench.c` sends it).
pub const HTTP_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n";

/// The length of the request head at the start of `bytes` (through its blank line), if complete.
pub fn request_head_len(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// TCP echo server on a port; with a count, a benchmark window around that many echoes
    /// (from the first data received), after which it exits; with a second count, it says when
    /// it holds that many connections (`[netecho] holding N connections`), so a benchmark can
    /// wait for its idle connections to be accepted before the window.
    TcpEcho(u16, Option<u64>, Option<u64>),
    /// UDP echo on a port.
    UdpEcho(u16),
    /// Accepts connections one after another and checksums what each sends.
    Sink(u16),
    /// Connects and sends this many pattern bytes.
    Source(SocketAddr, u64),
    /// Waits for a DHCP address and prints it.
    Dhcp,
    /// Does nothing, forever (the host pings it).
    Idle,
    /// Marks a benchmark window around this many ICMP echo requests.
    PingWait(u64),
    /// One TCP benchmark workload on a port with its size (bytes or round trips).
    Bench(BenchMode, u16, u64),
    /// Accepts this many connections on a port, echoes one byte on each, then holds them idle
    /// for this many seconds and reports the timer interrupts the system took meanwhile.
    Hold(u16, u64, u64),
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[&str]) -> Result<Command, String> {
        let port = |text: &str| text.parse::<u16>().map_err(|_| format!("bad port `{text}`"));
        let count = |text: &str| parse_count(text).ok_or_else(|| format!("bad number `{text}`"));
        match args {
            ["tcp", p] => Ok(Command::TcpEcho(port(p)?, None, None)),
            ["tcp", p, n] => Ok(Command::TcpEcho(port(p)?, Some(count(n)?), None)),
            ["tcp", p, n, held] => Ok(Command::TcpEcho(port(p)?, Some(count(n)?), Some(count(held)?))),
            ["udp", p] => Ok(Command::UdpEcho(port(p)?)),
            ["sink", p] => Ok(Command::Sink(port(p)?)),
            ["source", address, bytes] => {
                let address = address.parse().map_err(|_| format!("bad address `{address}` (want A.B.C.D:PORT)"))?;
                Ok(Command::Source(address, count(bytes)?))
            }
            ["dhcp"] => Ok(Command::Dhcp),
            ["idle"] => Ok(Command::Idle),
            ["ping-wait", n] => Ok(Command::PingWait(count(n)?)),
            ["hold", p, n, seconds] => Ok(Command::Hold(port(p)?, count(n)?, count(seconds)?)),
            ["bench", mode, p, n] => {
                let mode = match *mode {
                    "stream-in" => BenchMode::StreamIn,
                    "stream-out" => BenchMode::StreamOut,
                    "rr" => BenchMode::RoundTrips,
                    "http" => BenchMode::Http,
                    other => return Err(format!("unknown bench mode `{other}`")),
                };
                Ok(Command::Bench(mode, port(p)?, count(n)?))
            }
            [] => Err(String::from("no command")),
            [command, ..] => Err(format!("bad arguments for `{command}`")),
        }
    }
}

/// A decimal count with an optional binary suffix: `4096`, `64K`, `100M`, `1G`.
pub fn parse_count(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

pub mod pattern {
    //! The test stream: byte `i` is `(i % 251) as u8 ^ (i / 4096) as u8`.

    /// Byte `index` of the stream.
    pub const fn byte(index: u64) -> u8 {
        ((index % 251) as u8) ^ ((index / 4096) as u8)
    }

    /// Fills `buf` with the stream from `offset` on.
    pub fn fill(buf: &mut [u8], offset: u64) {
        for (i, slot) in buf.iter_mut().enumerate() {
            *slot = byte(offset + i as u64);
        }
    }
}

/// FNV-1a, 64-bit: a checksum both ends compute in a streaming fashion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64::new()
    }
}

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of nothing.
    pub const fn new() -> Fnv1a64 {
        Fnv1a64(Self::OFFSET_BASIS)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// The hash so far.
    pub const fn value(&self) -> u64 {
        self.0
    }

    /// The hash as 16 lowercase hex digits, as `sink` and `source` print it.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// An echo connection's output not yet accepted by the socket. Reading stops while it holds
/// [`EchoBuffer::LIMIT`] or more, so a peer that sends without reading is slowed by TCP flow
/// control instead of growing the buffer; no byte is ever dropped.
#[derive(Clone, Debug, Default)]
pub struct EchoBuffer {
    pending: VecDeque<u8>,
}

impl EchoBuffer {
    /// Pending bytes above which the connection is not read.
    pub const LIMIT: usize = 256 * 1024;

    /// An empty buffer.
    pub const fn new() -> EchoBuffer {
        EchoBuffer { pending: VecDeque::new() }
    }

    /// Whether more input may be read now.
    pub fn accepts_input(&self) -> bool {
        self.pending.len() < Self::LIMIT
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes);
    }

    /// The next contiguous run of waiting bytes (empty when nothing waits).
    pub fn front(&self) -> &[u8] {
        self.pending.as_slices().0
    }

    /// Drops the first `n` waiting bytes (after the socket took them); frees the memory once
    /// the buffer drains, so idle connections cost nothing.
    pub fn consume(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
        if self.pending.is_empty() && self.pending.capacity() > 64 * 1024 {
            self.pending = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests;
