//! Pipes between processes (feature `processes`): a pipe whose ends are in different VMs lives
//! on the process host (libos-process-protocol's "Pipes between VMs").
//!
//! - **When.** Before a fork copies the VM, [`share_for_fork`] hands every local pipe the
//!   descriptor table reaches to the host: it registers the pipe with this VM's counts of read
//!   and write ends, and moves the bytes already buffered into the host's buffer, so that the
//!   copy and the original see one pipe with one buffer. A pipe made after the fork stays
//!   local (today's path, no host involved) until the next fork.
//! - **Reads and writes** name the guest-physical pages of the caller's buffer; the host copies
//!   between the VMs' RAM directly, and replies with the count (0 at end of file, `EPIPE`
//!   without readers). The caller waits interruptibly: a signal cancels the request, and what
//!   the host did before the cancel is the result (a partial write is not lost).
//! - **Ends.** Each VM tells the host how many ends of each side it holds whenever that
//!   changes ([`ends_changed`]); end of file and `EPIPE` follow from the totals over all VMs,
//!   and a VM that ends closes its ends.
//! - **Readiness** (`poll`, `select`, `epoll`) comes from the host's state events
//!   ([`on_event`]), which it sends to every VM holding an end whenever the state changes.

use super::{Pipe, changed};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use libos::control;
use libos::sync::Mutex;
use libos::{Errno, Result};
use libos_process_protocol::{
    PIPE_CAPACITY, PIPE_NO_READERS, PIPE_NO_WRITERS, PIPE_NONBLOCK, PIPE_READABLE, PIPE_WRITABLE, PipeId, Reply, RequestKind, Segment, Segments,
};

/// The shared pipes of this VM, by host id (events find their pipe here).
static SHARED: Mutex<Vec<(PipeId, Weak<Pipe>)>> = Mutex::new(Vec::new());

/// Before a fork: every local pipe reachable from the descriptor table becomes a host pipe.
/// Errors: the host's (`ENOMEM`), `EIO` when the channel fails.
pub fn share_for_fork() -> Result<()> {
    let mut pipes: Vec<Arc<Pipe>> = Vec::new();
    crate::fd::for_each_object(|object| {
        if let crate::fd::Object::Pipe(end) = object {
            let pipe = end.pipe();
            if pipe.host_id().is_none() && !pipes.iter().any(|p| Arc::ptr_eq(p, pipe)) {
                pipes.push(pipe.clone());
            }
        }
    });
    for pipe in pipes {
        share(&pipe)?;
    }
    Ok(())
}

/// Registers `pipe` with the host and moves its buffered bytes there.
fn share(pipe: &Arc<Pipe>) -> Result<()> {
    let (readers, writers) = pipe.local_ends();
    let id = match control::call(RequestKind::PipeNew { readers, writers })? {
        Reply::Pipe { pipe } => pipe,
        Reply::Error { errno } => return Err(Errno::from_raw(errno).unwrap_or(Errno::ENOMEM)),
        _ => return Err(Errno::EIO),
    };
    SHARED.lock().push((id, Arc::downgrade(pipe)));
    // The bytes written before the fork: the host's buffer is as large as ours, so they fit.
    let pending = pipe.take_buffered();
    pipe.set_host(id, if pending.is_empty() { PIPE_WRITABLE } else { PIPE_READABLE | PIPE_WRITABLE });
    let mut done = 0;
    while done < pending.len() {
        match transfer(id, &pending[done..], true, PIPE_NONBLOCK)? {
            0 => return Err(Errno::EIO),
            n => done += n,
        }
    }
    Ok(())
}

/// This VM's count of `pipe`'s ends changed (an end was made or closed).
pub fn ends_changed(pipe: &Pipe) {
    let Some(id) = pipe.host_id() else { return };
    let (readers, writers) = pipe.local_ends();
    if let Err(e) = control::send(RequestKind::PipeEnds { pipe: id, readers, writers }) {
        log::warn!("posix-shim: cannot tell the host about the ends of pipe {id}: {e}");
    }
    if readers == 0 && writers == 0 {
        SHARED.lock().retain(|(shared, _)| *shared != id);
    }
}

/// The host's state event for pipe `id`.
pub fn on_event(id: PipeId, state: u32) {
    let pipe = SHARED.lock().iter().find(|(shared, _)| *shared == id).and_then(|(_, pipe)| pipe.upgrade());
    if let Some(pipe) = pipe {
        pipe.set_host_state(state);
        changed();
    }
}

/// Reads into `buf` from host pipe `id`: bytes read, 0 at end of file. A read never returns
/// more than the pipe holds, so the request names only that much of `buf` (finding a page's
/// physical address is a page-table walk: a 1 MiB buffer would cost 256 of them per read).
pub fn read(id: PipeId, buf: &mut [u8], nonblocking: bool) -> Result<usize> {
    let len = buf.len().min(PIPE_CAPACITY);
    transfer(id, &buf[..len], false, if nonblocking { PIPE_NONBLOCK } else { 0 })
}

/// Writes `buf` to host pipe `id` (all of it unless non-blocking); `EPIPE` without readers.
pub fn write(id: PipeId, buf: &[u8], nonblocking: bool) -> Result<usize> {
    transfer(id, buf, true, if nonblocking { PIPE_NONBLOCK } else { 0 })
}

/// One read or write request over as much of `buf` as [`segments_of`] describes.
fn transfer(id: PipeId, buf: &[u8], write: bool, flags: u32) -> Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let segments = segments_of(buf);
    let kind =
        if write { RequestKind::PipeWrite { pipe: id, flags, segments } } else { RequestKind::PipeRead { pipe: id, flags, segments } };
    let request = control::start_request(kind)?;
    let queue = control::replies().ok_or(Errno::ENOSYS)?;
    let reply = match crate::signal::wait_interruptible(queue, || control::has_reply(request), None) {
        Ok(_) => control::take_reply(request).ok_or(Errno::EIO)?,
        Err(interrupted) => match control::cancel(request)? {
            // What the host did before it saw the cancel is the call's result.
            Reply::Count { bytes } if bytes > 0 => Reply::Count { bytes },
            _ => return Err(interrupted),
        },
    };
    match reply {
        Reply::Count { bytes } => Ok(usize::try_from(bytes).unwrap_or(usize::MAX).min(buf.len())),
        Reply::Error { errno } => Err(Errno::from_raw(errno).unwrap_or(Errno::EIO)),
        _ => Err(Errno::EIO),
    }
}

/// The guest-physical pieces of `buf`, page by page, merged where contiguous; as many as one
/// request holds (a longer buffer is served in part, as a short read or write may be).
fn segments_of(buf: &[u8]) -> Segments {
    const PAGE: usize = 4096;
    let platform = libos::hal::platform();
    let mut segments = Segments::new();
    let mut last: Option<Segment> = None;
    let mut at = buf.as_ptr() as usize;
    let end = at + buf.len();
    while at < end {
        let piece = ((at & !(PAGE - 1)) + PAGE).min(end) - at;
        let phys = platform.virt_to_phys(at);
        match &mut last {
            Some(segment) if segment.addr + u64::from(segment.len) == phys && segment.len as usize + piece <= u32::MAX as usize => {
                segment.len += piece as u32;
            }
            _ => {
                if let Some(segment) = last.take() {
                    if !segments.push(segment) {
                        return segments;
                    }
                }
                last = Some(Segment { addr: phys, len: piece as u32 });
            }
        }
        at += piece;
    }
    if let Some(segment) = last {
        segments.push(segment);
    }
    segments
}

/// `poll` bits of a host pipe's end from the host's last state.
pub fn ready(state: u32, write_end: bool) -> i16 {
    use super::{POLLERR, POLLHUP, POLLIN, POLLOUT};
    if write_end {
        if state & PIPE_NO_READERS != 0 { POLLERR } else if state & PIPE_WRITABLE != 0 { POLLOUT } else { 0 }
    } else {
        (if state & PIPE_READABLE != 0 { POLLIN } else { 0 }) | (if state & PIPE_NO_WRITERS != 0 { POLLHUP } else { 0 })
    }
}

/// `FIONREAD` of a host pipe's read end: 1 when it has data (the host does not say how much).
pub fn available(state: u32) -> usize {
    usize::from(state & PIPE_READABLE != 0)
}

/// Whether the other side of a host pipe has no end left in any VM.
pub fn peer_closed(state: u32, write_end: bool) -> bool {
    state & if write_end { PIPE_NO_READERS } else { PIPE_NO_WRITERS } != 0
}
