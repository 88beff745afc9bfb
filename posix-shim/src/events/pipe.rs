//! Pipes (`pipe2`) and event counters (`eventfd2`).
//!
//! A pipe is a 64 KiB byte queue shared by its two ends. Writes of up to `PIPE_BUF` bytes are
//! atomic, as POSIX requires: they wait until the whole write fits. A write to a pipe whose
//! read end is closed sends `SIGPIPE` to the thread (default action: terminate) and fails with
//! `EPIPE`, as on Linux. `AF_UNIX` stream sockets are two pipes, one per direction
//! (`crate::net::unix`), so they share this code, with the socket calls' extra flags
//! (`MSG_PEEK`, `MSG_DONTWAIT`, `MSG_NOSIGNAL`).

use super::*;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

/// Bytes a write must move at once when it is this short (POSIX `PIPE_BUF`).
const PIPE_BUF: usize = 4096;

/// The shared state of a pipe.
pub struct Pipe {
    buffer: Mutex<VecDeque<u8>>,
    readers: AtomicUsize,
    writers: AtomicUsize,
    /// How many read (write) ends were ever made: a FIFO's opener waits for the other side's
    /// count to move, so a peer that opened and closed again still releases it, as on Linux.
    reads_opened: AtomicU64,
    writes_opened: AtomicU64,
    queue: WaitQueue,
    /// Bumped on every change (see [`super::changes`]).
    changes: AtomicU64,
    /// The process host's id for this pipe once a fork shared it (0: local; see
    /// [`super::host_pipe`]): its buffer then lives on the host, and `readers`/`writers`
    /// count this VM's ends only.
    host: AtomicU32,
    /// The host's last state bits for it (`PIPE_*` of libos-process-protocol).
    #[cfg_attr(not(feature = "processes"), expect(dead_code, reason = "only host pipes (feature `processes`) have a state"))]
    host_state: AtomicU32,
}

impl Pipe {
    /// An empty pipe with no ends yet ([`PipeEnd::new`] makes them).
    pub fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            buffer: Mutex::new(VecDeque::new()),
            readers: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            reads_opened: AtomicU64::new(0),
            writes_opened: AtomicU64::new(0),
            queue: WaitQueue::new(),
            changes: AtomicU64::new(0),
            host: AtomicU32::new(0),
            host_state: AtomicU32::new(0),
        })
    }

    /// The process host's id for this pipe, once shared.
    pub fn host_id(&self) -> Option<u32> {
        Some(self.host.load(Ordering::Acquire)).filter(|&id| id != 0)
    }

    /// Makes this a host pipe with id `id`, in state `state`.
    #[cfg(feature = "processes")]
    pub(super) fn set_host(&self, id: u32, state: u32) {
        self.host_state.store(state, Ordering::Release);
        self.host.store(id, Ordering::Release);
    }

    /// The host's new state bits for this pipe.
    #[cfg(feature = "processes")]
    pub(super) fn set_host_state(&self, state: u32) {
        self.host_state.store(state, Ordering::Release);
        self.notify();
    }

    /// This VM's read and write ends.
    #[cfg(feature = "processes")]
    pub(super) fn local_ends(&self) -> (u32, u32) {
        let count = |side: &AtomicUsize| u32::try_from(side.load(Ordering::Acquire)).unwrap_or(u32::MAX);
        (count(&self.readers), count(&self.writers))
    }

    /// Empties the local buffer (its bytes move to the host).
    #[cfg(feature = "processes")]
    pub(super) fn take_buffered(&self) -> alloc::vec::Vec<u8> {
        self.buffer.lock().drain(..).collect()
    }

    /// This VM's count of ends changed: a host pipe tells the host.
    fn ends_changed(&self) {
        #[cfg(feature = "processes")]
        host_pipe::ends_changed(self);
    }

    fn notify(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
        changed();
    }

    /// Whether an end of the given side is open now.
    pub fn has_end(&self, write: bool) -> bool {
        let side = if write { &self.writers } else { &self.readers };
        side.load(Ordering::Acquire) > 0
    }

    /// Waits (interruptibly) until an end of the given side is open or has been opened since
    /// this call began: a FIFO opened for reading waits for a writer and the other way round.
    pub fn wait_for_end(&self, write: bool) -> Result<()> {
        let opened = if write { &self.writes_opened } else { &self.reads_opened };
        let seen = opened.load(Ordering::Acquire);
        if self.has_end(write) {
            return Ok(());
        }
        crate::signal::wait_interruptible_timed(&self.queue, || self.has_end(write) || opened.load(Ordering::Acquire) != seen, None)
            .map(drop)
    }
}

/// One end of a pipe (the descriptor's object); dropping the last end of a side closes it.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
    nonblocking: AtomicBool,
    /// Closed before the object went away (a socket's `shutdown`).
    shut: AtomicBool,
    /// The write end of a FIFO opened for reading and writing ([`PipeEnd::both`]).
    writer: Option<alloc::boxed::Box<PipeEnd>>,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.shut();
    }
}

impl PipeEnd {
    /// A new read (or write) end of `pipe`.
    pub fn new(pipe: Arc<Pipe>, write: bool, nonblocking: bool) -> PipeEnd {
        let side = if write { &pipe.writers } else { &pipe.readers };
        side.fetch_add(1, Ordering::AcqRel);
        let opened = if write { &pipe.writes_opened } else { &pipe.reads_opened };
        opened.fetch_add(1, Ordering::AcqRel);
        pipe.notify();
        pipe.ends_changed();
        PipeEnd { pipe, write, nonblocking: AtomicBool::new(nonblocking), shut: AtomicBool::new(false), writer: None }
    }

    /// A FIFO opened `O_RDWR`: a read end that also holds a write end, so reads never see
    /// end of file and writes never `EPIPE` while it is open (writes go through
    /// [`PipeEnd::write`], which uses the inner end).
    pub fn both(pipe: Arc<Pipe>, nonblocking: bool) -> PipeEnd {
        let writer = PipeEnd::new(pipe.clone(), true, nonblocking);
        let mut end = PipeEnd::new(pipe, false, nonblocking);
        end.writer = Some(alloc::boxed::Box::new(writer));
        end
    }

    /// Closes this end now (the other side sees end of file, or `EPIPE`); calls on it fail
    /// from then on. Idempotent; dropping the end does the same.
    pub fn shut(&self) {
        if !self.shut.swap(true, Ordering::AcqRel) {
            let side = if self.write { &self.pipe.writers } else { &self.pipe.readers };
            side.fetch_sub(1, Ordering::AcqRel);
            self.pipe.notify();
            self.pipe.ends_changed();
        }
    }

    /// The pipe this end belongs to.
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }

    /// Whether [`PipeEnd::shut`] closed it.
    pub fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    /// Whether this is the write end.
    pub fn is_write_end(&self) -> bool {
        self.write
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        if let Some(writer) = &self.writer {
            writer.set_nonblocking(on);
        }
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// Bytes queued to read (`FIONREAD`): for a host pipe, 1 when it has data (the host
    /// does not say how much).
    pub fn available(&self) -> usize {
        #[cfg(feature = "processes")]
        if self.pipe.host_id().is_some() {
            return host_pipe::available(self.pipe.host_state.load(Ordering::Acquire));
        }
        self.pipe.buffer.lock().len()
    }

    /// How many times the pipe changed (edge-triggered epoll).
    pub fn changes(&self) -> u64 {
        self.pipe.changes.load(Ordering::Acquire)
    }

    /// Whether the other side has no end open any more.
    pub fn peer_closed(&self) -> bool {
        #[cfg(feature = "processes")]
        if self.pipe.host_id().is_some() {
            return host_pipe::peer_closed(self.pipe.host_state.load(Ordering::Acquire), self.write);
        }
        let other = if self.write { &self.pipe.readers } else { &self.pipe.writers };
        other.load(Ordering::Acquire) == 0
    }

    /// Reads up to `buf.len()` bytes; 0 at end of file (no writers left).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.receive(buf, false, false, None)
    }

    /// Reads (or copies, with `peek`) up to `buf.len()` bytes, waiting for some unless
    /// non-blocking or `dont_wait` (`EAGAIN`), at most `timeout` (`EAGAIN`); 0 at end of file.
    pub fn receive(&self, buf: &mut [u8], peek: bool, dont_wait: bool, timeout: Option<Duration>) -> Result<usize> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() || self.is_shut() {
            return Ok(0);
        }
        #[cfg(feature = "processes")]
        if let Some(id) = self.pipe.host_id() {
            // Host pipes are pipes and FIFOs, never sockets: no peeking or timeouts.
            return host_pipe::read(id, buf, dont_wait || self.is_nonblocking());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            {
                let mut data = self.pipe.buffer.lock();
                if !data.is_empty() {
                    let n = buf.len().min(data.len());
                    if peek {
                        for (slot, byte) in buf.iter_mut().zip(data.iter()) {
                            *slot = *byte;
                        }
                        return Ok(n);
                    }
                    for (slot, byte) in buf.iter_mut().zip(data.drain(..n)) {
                        *slot = byte;
                    }
                    drop(data);
                    self.pipe.notify();
                    return Ok(n);
                }
                if self.pipe.writers.load(Ordering::Acquire) == 0 {
                    return Ok(0);
                }
            }
            if dont_wait || self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            let pipe = &self.pipe;
            let woken = crate::signal::wait_interruptible_timed(
                &pipe.queue,
                || pipe.buffer.try_lock().is_none_or(|d| !d.is_empty()) || pipe.writers.load(Ordering::Acquire) == 0,
                deadline,
            )?;
            if !woken {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// Writes all of `buf` (blocking while full), or what fits with `O_NONBLOCK`.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.send(buf, false, true, None)
    }

    /// Writes `buf`, waiting for room unless non-blocking or `dont_wait` (then what fits, or
    /// `EAGAIN`), at most `timeout` (then what was written, or `EAGAIN`). Without readers (or
    /// after [`PipeEnd::shut`]): `EPIPE`, and `SIGPIPE` when `signal`.
    pub fn send(&self, buf: &[u8], dont_wait: bool, signal: bool, timeout: Option<Duration>) -> Result<usize> {
        if let Some(writer) = &self.writer {
            return writer.send(buf, dont_wait, signal, timeout);
        }
        if !self.write {
            return Err(Errno::EBADF);
        }
        let nonblocking = dont_wait || self.is_nonblocking();
        #[cfg(feature = "processes")]
        if let Some(id) = self.pipe.host_id() {
            if self.is_shut() {
                return Err(Errno::EPIPE);
            }
            let written = host_pipe::write(id, buf, nonblocking);
            if written == Err(Errno::EPIPE) && signal {
                crate::signal::raise_pipe();
            }
            return written;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        // A short write goes in whole or waits (PIPE_BUF atomicity); a long one in pieces.
        let needed = |done: usize| if buf.len() <= PIPE_BUF { buf.len() - done } else { 1 };
        let mut done = 0;
        while done < buf.len() {
            if self.pipe.readers.load(Ordering::Acquire) == 0 || self.is_shut() {
                if signal {
                    crate::signal::raise_pipe();
                }
                return if done > 0 { Ok(done) } else { Err(Errno::EPIPE) };
            }
            {
                let mut data = self.pipe.buffer.lock();
                let room = PIPE_CAPACITY - data.len();
                if room >= needed(done) {
                    let n = room.min(buf.len() - done);
                    data.extend(&buf[done..done + n]);
                    done += n;
                    drop(data);
                    self.pipe.notify();
                    continue;
                }
            }
            if nonblocking {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            let pipe = &self.pipe;
            let want = needed(done);
            let waited = crate::signal::wait_interruptible_timed(
                &pipe.queue,
                || pipe.buffer.try_lock().is_none_or(|d| PIPE_CAPACITY - d.len() >= want) || pipe.readers.load(Ordering::Acquire) == 0,
                deadline,
            );
            match waited {
                Ok(true) => {}
                // A partial write is not lost: it is the result.
                Ok(false) => return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) },
                Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
            }
        }
        Ok(done)
    }

    /// `poll` bits: a read end is readable with data or at end of file (`POLLHUP` then); a
    /// write end is writable with room for `PIPE_BUF` bytes, `POLLERR` without readers.
    pub fn ready(&self) -> i16 {
        #[cfg(feature = "processes")]
        if self.pipe.host_id().is_some() {
            return host_pipe::ready(self.pipe.host_state.load(Ordering::Acquire), self.write);
        }
        let len = self.pipe.buffer.lock().len();
        if self.write {
            if self.peer_closed() { POLLERR } else if PIPE_CAPACITY - len >= PIPE_BUF { POLLOUT } else { 0 }
        } else if len > 0 {
            POLLIN | if self.peer_closed() { POLLHUP } else { 0 }
        } else if self.peer_closed() {
            POLLHUP
        } else {
            0
        }
    }
}

/// An `eventfd` counter.
pub struct EventCounter {
    value: Mutex<u64>,
    semaphore: bool,
    nonblocking: AtomicBool,
    queue: WaitQueue,
    changes: AtomicU64,
}

impl EventCounter {
    fn notify(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
        changed();
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// How many times the counter changed (edge-triggered epoll).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Reads (8 bytes): the counter, reset to 0 (or 1 with `EFD_SEMAPHORE`, decremented).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            {
                let mut value = self.value.lock();
                if *value > 0 {
                    let out = if self.semaphore { 1 } else { *value };
                    *value -= out;
                    drop(value);
                    buf[..8].copy_from_slice(&out.to_ne_bytes());
                    self.notify();
                    return Ok(8);
                }
            }
            if self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            crate::signal::wait_interruptible(&self.queue, || self.value.try_lock().is_none_or(|v| *v > 0), None)?;
        }
    }

    /// Writes (8 bytes): adds to the counter; `EINVAL` for `u64::MAX`.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        let add = u64::from_ne_bytes(buf.get(..8).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?);
        if add == u64::MAX {
            return Err(Errno::EINVAL);
        }
        loop {
            {
                let mut value = self.value.lock();
                if u64::MAX - 1 - *value >= add {
                    *value += add;
                    drop(value);
                    self.notify();
                    return Ok(8);
                }
            }
            if self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            crate::signal::wait_interruptible(&self.queue, || self.value.try_lock().is_none_or(|v| u64::MAX - 1 - *v >= add), None)?;
        }
    }

    /// `poll` bits.
    pub fn ready(&self) -> i16 {
        let value = *self.value.lock();
        (if value > 0 { POLLIN } else { 0 }) | (if value < u64::MAX - 1 { POLLOUT } else { 0 })
    }
}

/// `pipe2(fds, flags)`.
pub fn pipe2(fds: u64, flags: u64) -> Result<u64> {
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    user::check_access(fds, 8, libos::hal::Access::Write)?;
    let pipe = Pipe::new();
    let nonblocking = flags & O_NONBLOCK != 0;
    let cloexec = flags & O_CLOEXEC != 0;
    let (read, write) = fd::insert_pair(Object::Pipe(PipeEnd::new(pipe.clone(), false, nonblocking)), Object::Pipe(PipeEnd::new(pipe, true, nonblocking)), cloexec)?;
    // SAFETY: checked above; the C program passed `int fds[2]`.
    unsafe { user::write(fds, [read as i32, write as i32])? };
    Ok(0)
}

/// `eventfd2(initval, flags)`.
pub fn eventfd2(initial: u64, flags: u64) -> Result<u64> {
    if flags & !(O_NONBLOCK | O_CLOEXEC | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let counter = EventCounter {
        value: Mutex::new(initial & 0xffff_ffff),
        semaphore: flags & EFD_SEMAPHORE != 0,
        nonblocking: AtomicBool::new(flags & O_NONBLOCK != 0),
        queue: WaitQueue::new(),
        changes: AtomicU64::new(0),
    };
    fd::insert(Object::Event(counter), flags & O_CLOEXEC != 0)
}
