//! Pipes between VMs, the host's half (the guest's is posix-shim's `events::host_pipe`).
//!
//! A host pipe is a 64 KiB byte queue here, the ends each VM holds, and the reads and writes
//! waiting on it. Requests name guest-physical segments of the caller's buffer; [`Ram`] copies
//! between those and the queue (the VMs' RAM is a shared memory file the host reads and
//! writes), so each byte is copied once on the writer's side and once on the reader's. Every
//! change ends in [`Pipes::progress`], which completes what can complete and says which
//! replies and state events to send; the caller sends them after releasing its lock.
//!
//! Semantics are Linux's: writes of up to `PIPE_BUF` bytes are atomic, longer ones go in
//! pieces; a read returns what is there (0 at end of file: no write end left in any VM); a
//! write without a read end anywhere fails with `EPIPE` (after a partial write: the count).
//! Waiting requests are served in arrival order.

use libos_process_protocol::{
    Event, HostMessage, PIPE_NO_READERS, PIPE_NO_WRITERS, PIPE_NONBLOCK, PIPE_READABLE, PIPE_WRITABLE, Pid, PipeId, Reply, RequestId,
    Segment,
};
use std::collections::{BTreeMap, VecDeque};

/// Bytes a pipe holds (Linux's default; the guest sizes its reads by it).
pub const CAPACITY: usize = libos_process_protocol::PIPE_CAPACITY;
/// Writes up to this size are atomic (POSIX `PIPE_BUF`).
pub const PIPE_BUF: u64 = 4096;
const EAGAIN: i32 = nix::errno::Errno::EAGAIN as i32;
const EPIPE: i32 = nix::errno::Errno::EPIPE as i32;
const EINTR: i32 = nix::errno::Errno::EINTR as i32;
const EBADF: i32 = nix::errno::Errno::EBADF as i32;
const EFAULT: i32 = nix::errno::Errno::EFAULT as i32;

/// Access to the VMs' RAM by guest-physical segments.
pub trait Ram {
    /// Reads `out.len()` bytes of `segments`, starting `skip` bytes in.
    fn read(&self, pid: Pid, segments: &[Segment], skip: u64, out: &mut [u8]) -> std::io::Result<()>;
    /// Writes `data` into `segments`, starting `skip` bytes in.
    fn write(&self, pid: Pid, segments: &[Segment], skip: u64, data: &[u8]) -> std::io::Result<()>;
}

/// A read or write waiting on a pipe.
#[derive(Clone, Debug)]
struct Waiting {
    pid: Pid,
    id: RequestId,
    segments: Vec<Segment>,
    nonblocking: bool,
    /// Bytes moved so far (a long write goes in pieces).
    done: u64,
}

impl Waiting {
    fn total(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.len)).sum()
    }
}

#[derive(Default)]
struct Pipe {
    buffer: VecDeque<u8>,
    /// Read and write ends each VM holds.
    ends: BTreeMap<Pid, (u32, u32)>,
    reads: VecDeque<Waiting>,
    writes: VecDeque<Waiting>,
    /// The state last announced to each VM.
    announced: BTreeMap<Pid, u32>,
}

impl Pipe {
    fn totals(&self) -> (u64, u64) {
        self.ends.values().fold((0, 0), |(r, w), &(er, ew)| (r + u64::from(er), w + u64::from(ew)))
    }

    fn state(&self) -> u32 {
        let (readers, writers) = self.totals();
        let mut state = 0;
        if !self.buffer.is_empty() {
            state |= PIPE_READABLE;
        }
        if CAPACITY - self.buffer.len() >= PIPE_BUF as usize {
            state |= PIPE_WRITABLE;
        }
        if writers == 0 {
            state |= PIPE_NO_WRITERS;
        }
        if readers == 0 {
            state |= PIPE_NO_READERS;
        }
        state
    }
}

/// Every host pipe of a run.
#[derive(Default)]
pub struct Pipes {
    pipes: BTreeMap<PipeId, Pipe>,
    next: PipeId,
}

/// Messages to send: `(to, message)`.
pub type Outbox = Vec<(Pid, HostMessage)>;

impl Pipes {
    /// A new pipe of which `pid` holds `readers` and `writers` ends; its id.
    pub fn create(&mut self, pid: Pid, readers: u32, writers: u32, out: &mut Outbox) -> PipeId {
        self.next += 1;
        let id = self.next;
        let mut pipe = Pipe::default();
        pipe.ends.insert(pid, (readers, writers));
        self.pipes.insert(id, pipe);
        self.announce(id, out);
        id
    }

    /// `pid` now holds `readers` and `writers` ends of `pipe`.
    pub fn set_ends(&mut self, ram: &dyn Ram, pipe: PipeId, pid: Pid, readers: u32, writers: u32, out: &mut Outbox) {
        let Some(p) = self.pipes.get_mut(&pipe) else { return };
        if readers == 0 && writers == 0 {
            p.ends.remove(&pid);
            p.announced.remove(&pid);
        } else {
            p.ends.insert(pid, (readers, writers));
        }
        self.progress(ram, pipe, out);
    }

    /// A fork: `child` holds the same ends as `parent`.
    pub fn forked(&mut self, parent: Pid, child: Pid, out: &mut Outbox) {
        let ids: Vec<PipeId> = self.pipes.iter().filter(|(_, p)| p.ends.contains_key(&parent)).map(|(&id, _)| id).collect();
        for id in ids {
            if let Some(pipe) = self.pipes.get_mut(&id) {
                let ends = pipe.ends[&parent];
                pipe.ends.insert(child, ends);
            }
            self.announce(id, out);
        }
    }

    /// VM `pid` ended: its ends close and its requests go.
    pub fn vm_ended(&mut self, ram: &dyn Ram, pid: Pid, out: &mut Outbox) {
        let ids: Vec<PipeId> = self.pipes.keys().copied().collect();
        for id in ids {
            if let Some(pipe) = self.pipes.get_mut(&id) {
                pipe.ends.remove(&pid);
                pipe.announced.remove(&pid);
                pipe.reads.retain(|w| w.pid != pid);
                pipe.writes.retain(|w| w.pid != pid);
            }
            self.progress(ram, id, out);
        }
    }

    /// A read (`write` false) or write request of `pid`.
    #[allow(clippy::too_many_arguments)]
    pub fn request(&mut self, ram: &dyn Ram, pipe: PipeId, pid: Pid, id: RequestId, write: bool, flags: u32, segments: &[Segment], out: &mut Outbox) {
        let Some(p) = self.pipes.get_mut(&pipe) else {
            out.push((pid, HostMessage::Reply(id, Reply::Error { errno: EBADF })));
            return;
        };
        let waiting = Waiting { pid, id, segments: segments.to_vec(), nonblocking: flags & PIPE_NONBLOCK != 0, done: 0 };
        if write { p.writes.push_back(waiting) } else { p.reads.push_back(waiting) }
        self.progress(ram, pipe, out);
    }

    /// `pid` gives up request `id`: answered now with what it did so far, or `EINTR`.
    pub fn cancel(&mut self, pid: Pid, id: RequestId, out: &mut Outbox) {
        for pipe in self.pipes.values_mut() {
            for queue in [&mut pipe.reads, &mut pipe.writes] {
                if let Some(at) = queue.iter().position(|w| w.pid == pid && w.id == id) {
                    let waiting = queue.remove(at).expect("found");
                    let reply = if waiting.done > 0 { Reply::Count { bytes: waiting.done } } else { Reply::Error { errno: EINTR } };
                    out.push((pid, HostMessage::Reply(id, reply)));
                    return;
                }
            }
        }
    }

    /// Completes what can complete on `pipe`, then announces its state where it changed; a
    /// pipe no VM holds an end of any more is forgotten.
    pub fn progress(&mut self, ram: &dyn Ram, id: PipeId, out: &mut Outbox) {
        let Some(pipe) = self.pipes.get_mut(&id) else { return };
        loop {
            let moved = serve_reads(ram, pipe, out) | serve_writes(ram, pipe, out);
            if !moved {
                break;
            }
        }
        if pipe.ends.is_empty() {
            self.pipes.remove(&id);
            return;
        }
        self.announce(id, out);
    }

    /// Sends `pipe`'s state to every VM holding an end that has not heard it yet.
    fn announce(&mut self, id: PipeId, out: &mut Outbox) {
        let Some(pipe) = self.pipes.get_mut(&id) else { return };
        let state = pipe.state();
        let holders: Vec<Pid> = pipe.ends.keys().copied().collect();
        for pid in holders {
            if pipe.announced.insert(pid, state) != Some(state) {
                out.push((pid, HostMessage::Event(Event::Pipe { pipe: id, state })));
            }
        }
    }

    /// Whether there is none.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }
}

fn reply(out: &mut Outbox, waiting: &Waiting, reply: Reply) {
    out.push((waiting.pid, HostMessage::Reply(waiting.id, reply)));
}

/// Serves waiting reads in order while there is data or end of file; true if any completed.
fn serve_reads(ram: &dyn Ram, pipe: &mut Pipe, out: &mut Outbox) -> bool {
    let mut moved = false;
    while let Some(front) = pipe.reads.front() {
        let (_, writers) = pipe.totals();
        if pipe.buffer.is_empty() {
            if writers == 0 {
                reply(out, front, Reply::Count { bytes: 0 });
            } else if front.nonblocking {
                reply(out, front, Reply::Error { errno: EAGAIN });
            } else {
                break;
            }
            pipe.reads.pop_front();
            moved = true;
            continue;
        }
        let waiting = pipe.reads.pop_front().expect("front");
        let n = (waiting.total() as usize).min(pipe.buffer.len());
        let (first, second) = pipe.buffer.as_slices();
        let mut bytes = Vec::with_capacity(n);
        bytes.extend_from_slice(&first[..n.min(first.len())]);
        bytes.extend_from_slice(&second[..n - bytes.len()]);
        match ram.write(waiting.pid, &waiting.segments, 0, &bytes) {
            Ok(()) => {
                pipe.buffer.drain(..n);
                reply(out, &waiting, Reply::Count { bytes: n as u64 });
            }
            Err(_) => reply(out, &waiting, Reply::Error { errno: EFAULT }),
        }
        moved = true;
    }
    moved
}

/// Serves waiting writes in order while there is room (or no reader); true if any moved.
fn serve_writes(ram: &dyn Ram, pipe: &mut Pipe, out: &mut Outbox) -> bool {
    let mut moved = false;
    loop {
        let (readers, _) = pipe.totals();
        let Some(front) = pipe.writes.front_mut() else { break };
        let total = front.total();
        if readers == 0 {
            let answer = if front.done > 0 { Reply::Count { bytes: front.done } } else { Reply::Error { errno: EPIPE } };
            let waiting = pipe.writes.pop_front().expect("front");
            reply(out, &waiting, answer);
            moved = true;
            continue;
        }
        let room = (CAPACITY - pipe.buffer.len()) as u64;
        let remaining = total - front.done;
        // A short write goes in whole or waits; a long one in pieces.
        let n = if total <= PIPE_BUF { if room >= remaining { remaining } else { 0 } } else { room.min(remaining) };
        if n > 0 {
            let mut bytes = vec![0u8; n as usize];
            if ram.read(front.pid, &front.segments, front.done, &mut bytes).is_err() {
                let waiting = pipe.writes.pop_front().expect("front");
                let answer = if waiting.done > 0 { Reply::Count { bytes: waiting.done } } else { Reply::Error { errno: EFAULT } };
                reply(out, &waiting, answer);
                moved = true;
                continue;
            }
            pipe.buffer.extend(bytes);
            front.done += n;
            moved = true;
        }
        if front.done == total {
            let waiting = pipe.writes.pop_front().expect("front");
            reply(out, &waiting, Reply::Count { bytes: total });
            continue;
        }
        if front.nonblocking {
            let waiting = pipe.writes.pop_front().expect("front");
            let answer = if waiting.done > 0 { Reply::Count { bytes: waiting.done } } else { Reply::Error { errno: EAGAIN } };
            reply(out, &waiting, answer);
            moved = true;
            continue;
        }
        break;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Each VM's RAM: a flat byte array addressed by segment address.
    #[derive(Default)]
    struct FakeRam(RefCell<BTreeMap<Pid, Vec<u8>>>);

    impl FakeRam {
        fn with(vms: &[Pid]) -> FakeRam {
            FakeRam(RefCell::new(vms.iter().map(|&p| (p, vec![0u8; 1 << 20])).collect()))
        }
        fn put(&self, pid: Pid, at: u64, bytes: &[u8]) {
            self.0.borrow_mut().get_mut(&pid).unwrap()[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        }
        fn get(&self, pid: Pid, at: u64, len: usize) -> Vec<u8> {
            self.0.borrow()[&pid][at as usize..at as usize + len].to_vec()
        }
    }

    /// Walks `segments` from `skip` for `len` bytes: (address, length) pieces.
    fn pieces(segments: &[Segment], mut skip: u64, mut len: usize) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        for s in segments {
            let seg_len = u64::from(s.len);
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let n = ((seg_len - skip) as usize).min(len);
            out.push((s.addr + skip, n));
            skip = 0;
            len -= n;
            if len == 0 {
                break;
            }
        }
        out
    }

    impl Ram for FakeRam {
        fn read(&self, pid: Pid, segments: &[Segment], skip: u64, out: &mut [u8]) -> std::io::Result<()> {
            let mut at = 0;
            for (addr, n) in pieces(segments, skip, out.len()) {
                out[at..at + n].copy_from_slice(&self.get(pid, addr, n));
                at += n;
            }
            Ok(())
        }
        fn write(&self, pid: Pid, segments: &[Segment], skip: u64, data: &[u8]) -> std::io::Result<()> {
            let mut at = 0;
            for (addr, n) in pieces(segments, skip, data.len()) {
                self.put(pid, addr, &data[at..at + n]);
                at += n;
            }
            Ok(())
        }
    }

    fn seg(addr: u64, len: u32) -> Vec<Segment> {
        vec![Segment { addr, len }]
    }

    fn replies(out: &Outbox) -> Vec<(Pid, RequestId, Reply)> {
        out.iter().filter_map(|(pid, m)| if let HostMessage::Reply(id, r) = m { Some((*pid, *id, *r)) } else { None }).collect()
    }

    #[test]
    fn bytes_written_in_one_vm_are_read_in_another_then_end_of_file() {
        let ram = FakeRam::with(&[1, 2]);
        let mut pipes = Pipes::default();
        let mut out = Outbox::new();
        let id = pipes.create(1, 1, 1, &mut out);
        pipes.forked(1, 2, &mut out);
        // The child keeps the write end, the parent the read end.
        pipes.set_ends(&ram, id, 1, 1, 0, &mut out);
        pipes.set_ends(&ram, id, 2, 0, 1, &mut out);
        out.clear();
        pipes.request(&ram, id, 1, 10, false, 0, &seg(0x100, 64), &mut out);
        assert!(replies(&out).is_empty(), "a read waits for data");
        ram.put(2, 0x5000, b"hello pipe");
        pipes.request(&ram, id, 2, 20, true, 0, &seg(0x5000, 10), &mut out);
        assert_eq!(replies(&out), [(2, 20, Reply::Count { bytes: 10 }), (1, 10, Reply::Count { bytes: 10 })]);
        assert_eq!(ram.get(1, 0x100, 10), b"hello pipe");
        out.clear();
        pipes.vm_ended(&ram, 2, &mut out);
        pipes.request(&ram, id, 1, 11, false, 0, &seg(0x100, 64), &mut out);
        assert_eq!(replies(&out), [(1, 11, Reply::Count { bytes: 0 })], "no writer left: end of file");
        assert!(out.iter().any(|(pid, m)| *pid == 1 && matches!(m, HostMessage::Event(Event::Pipe { state, .. }) if state & PIPE_NO_WRITERS != 0)));
    }

    #[test]
    fn long_writes_go_in_pieces_and_short_ones_whole() {
        let ram = FakeRam::with(&[1, 2]);
        let mut pipes = Pipes::default();
        let mut out = Outbox::new();
        let id = pipes.create(1, 1, 0, &mut out);
        pipes.set_ends(&ram, id, 2, 0, 1, &mut out);
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        ram.put(2, 0, &big);
        out.clear();
        pipes.request(&ram, id, 2, 1, true, 0, &seg(0, big.len() as u32), &mut out);
        assert!(replies(&out).is_empty(), "100 000 bytes do not fit in 64 KiB: the write waits");
        let mut got = Vec::new();
        let mut request = 100;
        while got.len() < big.len() {
            out.clear();
            pipes.request(&ram, id, 1, request, false, 0, &seg(0x80000, 30_000), &mut out);
            let n = replies(&out).iter().find(|r| r.1 == request).map(|r| r.2).unwrap();
            let Reply::Count { bytes } = n else { panic!("{n:?}") };
            got.extend(ram.get(1, 0x80000, bytes as usize));
            request += 1;
        }
        assert_eq!(got, big);
        // A short write into a nearly full pipe waits for room for all of it.
        out.clear();
        ram.put(2, 0, &vec![7u8; CAPACITY - 100]);
        pipes.request(&ram, id, 2, 2, true, 0, &seg(0, (CAPACITY - 100) as u32), &mut out);
        pipes.request(&ram, id, 2, 3, true, PIPE_NONBLOCK, &seg(0, 200), &mut out);
        assert_eq!(replies(&out)[1], (2, 3, Reply::Error { errno: EAGAIN }), "PIPE_BUF writes are atomic");
    }

    #[test]
    fn writes_without_readers_fail_with_epipe_and_cancel_answers() {
        let ram = FakeRam::with(&[1]);
        let mut pipes = Pipes::default();
        let mut out = Outbox::new();
        let id = pipes.create(1, 1, 1, &mut out);
        out.clear();
        pipes.request(&ram, id, 1, 5, false, 0, &seg(0, 10), &mut out);
        pipes.cancel(1, 5, &mut out);
        assert_eq!(replies(&out), [(1, 5, Reply::Error { errno: EINTR })]);
        out.clear();
        pipes.set_ends(&ram, id, 1, 0, 1, &mut out);
        pipes.request(&ram, id, 1, 6, true, 0, &seg(0, 10), &mut out);
        assert_eq!(replies(&out), [(1, 6, Reply::Error { errno: EPIPE })]);
        pipes.set_ends(&ram, id, 1, 0, 0, &mut out);
        assert!(pipes.is_empty(), "a pipe without ends is forgotten");
        out.clear();
        pipes.request(&ram, id, 1, 7, false, 0, &seg(0, 10), &mut out);
        assert_eq!(replies(&out), [(1, 7, Reply::Error { errno: EBADF })]);
    }
}
