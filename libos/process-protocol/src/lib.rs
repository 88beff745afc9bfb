//! # libos-process-protocol: what a guest and the process host say to each other
//!
//! libos runs every process of a program in its own VM (see the README's "Processes"). The
//! guest kernel and the host side (`./x`, which starts and stops the VMs) talk over one
//! byte stream per VM, the **control channel** (a virtio console port on the guest side, a
//! Unix socket on the host side). Every message is one line of ASCII text, so a run can be
//! followed with `socat` and a broken peer is easy to see.
//!
//! - [`Request`]: guest to host. The guest sends one request at a time and waits for its
//!   [`Reply`].
//! - [`Reply`] and [`Event`]: host to guest. Replies answer the guest's last request; events
//!   come whenever something happens to the VM's process (a child ended, a signal arrived).
//!   Both start with their kind (`reply` or `event`), so the guest tells them apart without
//!   context.
//!
//! Exit statuses are Linux wait statuses (`code << 8` for an exit, the signal number for a
//! death by signal), the values `wait4` stores.
//!
//! Users: libos's `control` module and posix-shim (guest), xtask's `process` module (host).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// The longest line either side accepts (a longer one is a broken peer).
pub const MAX_LINE: usize = 256;

/// A process id as the host hands them out (the first process is 1).
pub type Pid = u32;

/// What a guest asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Copy this VM into a new one (the child), which resumes at the same point.
    Fork,
    /// Send signal `signal` to process `pid` (or to every process of group `-pid` when
    /// `pid` is negative).
    Kill {
        /// The process (positive) or process group (negative).
        pid: i64,
        /// The signal number.
        signal: u32,
    },
    /// This process is ending with wait status `status` (sent just before the VM powers off).
    Exit {
        /// The wait status.
        status: u32,
    },
}

/// The host's answer to the last [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// To the parent of a fork: the child's pid.
    Forked {
        /// The child's pid.
        child: Pid,
    },
    /// To the child of a fork: its own pid and its parent's.
    Child {
        /// The child's own pid.
        pid: Pid,
        /// Its parent's pid.
        parent: Pid,
    },
    /// The request was carried out.
    Done,
    /// The request failed with this Linux errno (`EAGAIN`: too many processes, `ESRCH`: no
    /// such process, `ENOMEM`: the child VM could not start).
    Error {
        /// The Linux errno.
        errno: i32,
    },
}

/// Something that happened to the VM's process, sent by the host whenever it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Child `pid` ended with wait status `status`.
    Exited {
        /// The child.
        pid: Pid,
        /// Its wait status.
        status: u32,
    },
    /// Process `from` sent this process signal `signal`.
    Signal {
        /// The signal number.
        signal: u32,
        /// The sender.
        from: Pid,
    },
}

/// A line from the host: a reply or an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMessage {
    /// An answer to the guest's last request.
    Reply(Reply),
    /// Something that happened.
    Event(Event),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Request::Fork => write!(f, "fork"),
            Request::Kill { pid, signal } => write!(f, "kill {pid} {signal}"),
            Request::Exit { status } => write!(f, "exit {status}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reply::Forked { child } => write!(f, "reply forked {child}"),
            Reply::Child { pid, parent } => write!(f, "reply child {pid} {parent}"),
            Reply::Done => write!(f, "reply done"),
            Reply::Error { errno } => write!(f, "reply error {errno}"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Exited { pid, status } => write!(f, "event exited {pid} {status}"),
            Event::Signal { signal, from } => write!(f, "event signal {signal} {from}"),
        }
    }
}

impl fmt::Display for HostMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMessage::Reply(reply) => reply.fmt(f),
            HostMessage::Event(event) => event.fmt(f),
        }
    }
}

/// The words of a line, at most `N` of them; `None` when there are more.
fn words<const N: usize>(line: &str) -> Option<([&str; N], usize)> {
    let mut out = [""; N];
    let mut count = 0;
    for word in line.split_ascii_whitespace() {
        *out.get_mut(count)? = word;
        count += 1;
    }
    Some((out, count))
}

/// A decimal number with no sign and no leading `+` (`str::parse` would take `+5`).
fn number<T: core::str::FromStr>(word: &str) -> Option<T> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// A decimal number that may start with `-`.
fn signed(word: &str) -> Option<i64> {
    match word.strip_prefix('-') {
        Some(rest) => number::<i64>(rest).map(|n| -n),
        None => number(word),
    }
}

impl Request {
    /// Parses a guest's line (without its newline). `None`: not a request (the host then
    /// treats the guest as broken, see xtask's `process`).
    pub fn parse(line: &str) -> Option<Request> {
        if line.len() > MAX_LINE {
            return None;
        }
        match words::<3>(line)? {
            (["fork", "", ""], 1) => Some(Request::Fork),
            (["kill", pid, signal], 3) => Some(Request::Kill { pid: signed(pid)?, signal: number(signal)? }),
            (["exit", status, ""], 2) => Some(Request::Exit { status: number(status)? }),
            _ => None,
        }
    }
}

impl HostMessage {
    /// Parses a host's line (without its newline). `None`: not a message.
    pub fn parse(line: &str) -> Option<HostMessage> {
        if line.len() > MAX_LINE {
            return None;
        }
        let message = match words::<4>(line)? {
            (["reply", "forked", child, ""], 3) => HostMessage::Reply(Reply::Forked { child: number(child)? }),
            (["reply", "child", pid, parent], 4) => HostMessage::Reply(Reply::Child { pid: number(pid)?, parent: number(parent)? }),
            (["reply", "done", "", ""], 2) => HostMessage::Reply(Reply::Done),
            (["reply", "error", errno, ""], 3) => HostMessage::Reply(Reply::Error { errno: number(errno)? }),
            (["event", "exited", pid, status], 4) => HostMessage::Event(Event::Exited { pid: number(pid)?, status: number(status)? }),
            (["event", "signal", signal, from], 4) => HostMessage::Event(Event::Signal { signal: number(signal)?, from: number(from)? }),
            _ => return None,
        };
        Some(message)
    }
}

/// Collects a byte stream into lines: bytes go in as they arrive ([`LineBuffer::push`]) and
/// complete lines come out. A line longer than [`MAX_LINE`] is dropped whole (with the bytes
/// up to its newline) and reported as `Err(())` once.
#[derive(Debug)]
pub struct LineBuffer {
    bytes: [u8; MAX_LINE],
    len: usize,
    overlong: bool,
}

impl Default for LineBuffer {
    fn default() -> LineBuffer {
        LineBuffer::new()
    }
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> LineBuffer {
        LineBuffer { bytes: [0; MAX_LINE], len: 0, overlong: false }
    }

    /// Feeds `byte`; at a newline, calls `line` with the completed line (`Err(())` when it
    /// was too long or not UTF-8).
    pub fn push(&mut self, byte: u8, mut line: impl FnMut(Result<&str, ()>)) {
        if byte == b'\n' {
            if self.overlong {
                line(Err(()));
            } else {
                let text = &self.bytes[..self.len];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                line(core::str::from_utf8(text).map_err(|_| ()));
            }
            self.len = 0;
            self.overlong = false;
        } else if self.len < MAX_LINE {
            self.bytes[self.len] = byte;
            self.len += 1;
        } else {
            self.overlong = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn every_message_reads_back_as_itself() {
        for request in [Request::Fork, Request::Kill { pid: 7, signal: 9 }, Request::Kill { pid: -3, signal: 15 }, Request::Exit { status: 0x0700 }] {
            assert_eq!(Request::parse(&request.to_string()), Some(request));
        }
        let messages = [
            HostMessage::Reply(Reply::Forked { child: 2 }),
            HostMessage::Reply(Reply::Child { pid: 2, parent: 1 }),
            HostMessage::Reply(Reply::Done),
            HostMessage::Reply(Reply::Error { errno: 11 }),
            HostMessage::Event(Event::Exited { pid: 4, status: 9 }),
            HostMessage::Event(Event::Signal { signal: 10, from: 1 }),
        ];
        for message in messages {
            assert_eq!(HostMessage::parse(&message.to_string()), Some(message));
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for line in ["", "fork now", "kill 1", "kill x 9", "kill 1 -9", "exit", "exit +3", "exit 99999999999", "Fork", &"fork ".repeat(60)] {
            assert_eq!(Request::parse(line), None, "{line:?}");
        }
        for line in ["reply", "reply forked", "reply forked -1", "reply child 2", "event exited 1", "event bogus 1 2", "reply done extra", "event signal 1 2 3"] {
            assert_eq!(HostMessage::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn lines_are_cut_at_newlines_and_overlong_ones_dropped() {
        let mut buffer = LineBuffer::new();
        let mut seen: Vec<Result<String, ()>> = Vec::new();
        let mut stream = std::format!("fork\r\nkill 2 9\n{}\nexit 0\n", "x".repeat(MAX_LINE + 1)).into_bytes();
        stream.extend_from_slice(b"\xff\n");
        for byte in stream {
            buffer.push(byte, |line| seen.push(line.map(String::from)));
        }
        assert_eq!(seen, [Ok("fork".into()), Ok("kill 2 9".into()), Err(()), Ok("exit 0".into()), Err(())]);
    }
}
