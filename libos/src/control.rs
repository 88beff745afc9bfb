//! The control channel to the process host: how this VM asks `./x` for a new process (`fork`),
//! signals another process, and hears that a child ended (feature `processes`).
//!
//! libos runs each process in its own VM. The host side (xtask's `process` module) gives every
//! VM a virtio console connected to it; the first one found at boot is the channel
//! ([`libos_virtio_console`]). The messages are [`libos_process_protocol`]'s lines.
//!
//! - A **reader thread** (`control`) reads the channel for as long as the VM runs. A reply goes
//!   to the caller waiting in [`call`]; an event goes to the handler posix-shim installs
//!   ([`set_event_handler`]), run on the reader thread.
//! - [`call`] sends one request and waits for its reply. Several requests may be outstanding
//!   (each has an id): a thread blocked in a pipe read through the host does not hold up
//!   another thread's `kill`. [`start_request`], [`take_reply`] and [`cancel`] let a caller
//!   wait interruptibly (posix-shim's pipe reads and writes).
//! - A fork copies the whole VM while the forking thread waits in [`call`]: the child VM
//!   resumes in that same wait, with its reader thread blocked in the same read, and its
//!   reply (`reply child PID PPID`) comes through its own channel. Nothing here knows which
//!   VM it runs in until that reply arrives.
//!
//! Without a console (a VM started without the process host) [`call`] fails with `ENOSYS`, so
//! `fork` behaves as it did before processes existed.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use libos_core::blocking::{Mutex, WaitQueue};
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};
use libos_process_protocol::{Event, HostMessage, LineBuffer, Reply, Request, RequestId, RequestKind};
use libos_virtio_console::VirtioConsole;

/// The channel found at boot.
struct Channel {
    console: Arc<VirtioConsole>,
    /// One line written at a time.
    writing: Mutex<()>,
    /// The next request id (0 is `exit`'s, which gets no reply).
    next_id: AtomicU32,
    /// Outstanding requests and, once it came, each one's reply.
    pending: IrqSpinLock<Vec<(RequestId, Option<Reply>)>>,
    /// Woken when a reply arrives.
    replied: WaitQueue,
}

static CHANNEL: spin::Once<Channel> = spin::Once::new();
static EVENT_HANDLER: spin::Once<fn(Event)> = spin::Once::new();

/// Boot step: finds the channel and starts its reader thread. Quiet when there is none.
pub(crate) fn start() {
    let Some(console) = libos_virtio_console::probe(&libos_core::hal::platform().devices()) else {
        log::debug!("control: no control channel; fork and friends fail with ENOSYS");
        return;
    };
    log::debug!("control: channel at {}", console.describe());
    CHANNEL.call_once(|| Channel {
        console,
        writing: Mutex::new(()),
        next_id: AtomicU32::new(1),
        pending: IrqSpinLock::new(Vec::new()),
        replied: WaitQueue::new(),
    });
    if let Err(e) = libos_sched::thread::Builder::new().name("control").spawn(read_forever) {
        log::error!("control: cannot start the reader thread ({e}); fork and friends fail with ENOSYS");
    }
}

/// Whether this VM has a process host to talk to.
pub fn available() -> bool {
    CHANNEL.get().is_some()
}

/// Installs the function that hears events (posix-shim's; the first call wins). It runs on the
/// reader thread, so it must not wait for another event or reply.
pub fn set_event_handler(handler: fn(Event)) {
    EVENT_HANDLER.call_once(|| handler);
}

/// Sends a request and returns its id without waiting: the reply is then [`take_reply`]'s,
/// and [`replies`] is woken when one arrives. Errors: `ENOSYS` without a channel, `EIO` when
/// the channel fails.
pub fn start_request(kind: RequestKind) -> Result<RequestId> {
    let channel = CHANNEL.get().ok_or(Errno::ENOSYS)?;
    let id = loop {
        let id = channel.next_id.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            break id;
        }
    };
    channel.pending.lock().push((id, None));
    if let Err(e) = send_on(channel, Request { id, kind }) {
        channel.pending.lock().retain(|(pending, _)| *pending != id);
        return Err(e);
    }
    Ok(id)
}

/// The reply to request `id` if it came (the request is then settled).
pub fn take_reply(id: RequestId) -> Option<Reply> {
    let channel = CHANNEL.get()?;
    let mut pending = channel.pending.lock();
    let at = pending.iter().position(|(pending, reply)| *pending == id && reply.is_some())?;
    pending.swap_remove(at).1
}

/// Whether the reply to request `id` came (lock-safe inside wait conditions).
pub fn has_reply(id: RequestId) -> bool {
    CHANNEL.get().is_some_and(|channel| channel.pending.lock().iter().any(|(pending, reply)| *pending == id && reply.is_some()))
}

/// The wait queue woken whenever a reply arrives.
pub fn replies() -> Option<&'static WaitQueue> {
    CHANNEL.get().map(|channel| &channel.replied)
}

/// Waits (not interruptibly) for the reply to request `id`.
pub fn wait_reply(id: RequestId) -> Result<Reply> {
    let channel = CHANNEL.get().ok_or(Errno::ENOSYS)?;
    let mut reply = None;
    channel.replied.wait_until(|| {
        reply = take_reply(id);
        reply.is_some()
    });
    reply.ok_or(Errno::EIO)
}

/// Sends `kind` and waits for its reply. Errors as [`start_request`].
pub fn call(kind: RequestKind) -> Result<Reply> {
    let id = start_request(kind)?;
    wait_reply(id)
}

/// Gives up request `id` (its caller was interrupted) and returns its reply: what it did
/// before the host saw the cancel, or `EINTR`.
pub fn cancel(id: RequestId) -> Result<Reply> {
    let cancel = start_request(RequestKind::Cancel { request: id })?;
    let reply = wait_reply(id);
    let _ = wait_reply(cancel);
    reply
}

/// Sends `kind` without waiting for a reply (the host sends none to `exit`). Errors as
/// [`start_request`].
pub fn send(kind: RequestKind) -> Result<()> {
    send_on(CHANNEL.get().ok_or(Errno::ENOSYS)?, Request { id: 0, kind })
}

fn send_on(channel: &Channel, request: Request) -> Result<()> {
    let line = alloc::format!("{request}\n");
    let _one = channel.writing.lock();
    channel.console.write_all(line.as_bytes())
}

/// The reader thread: lines in, replies to their callers, events to the handler.
fn read_forever() {
    let Some(channel) = CHANNEL.get() else { return };
    let mut lines = LineBuffer::new();
    let mut buffer = [0u8; 512];
    loop {
        let n = match channel.console.read(&mut buffer) {
            Ok(n) => n,
            Err(e) => {
                log::error!("control: the channel failed ({e}); no more events from the host");
                return;
            }
        };
        for &byte in &buffer[..n] {
            lines.push(byte, |line| match line.ok().and_then(HostMessage::parse) {
                Some(HostMessage::Reply(id, reply)) => {
                    let mut pending = channel.pending.lock();
                    match pending.iter_mut().find(|(pending, _)| *pending == id) {
                        Some(slot) => slot.1 = Some(reply),
                        None => log::warn!("control: a reply to request {id}, which is not outstanding; ignored"),
                    }
                    drop(pending);
                    channel.replied.wake_all();
                }
                Some(HostMessage::Event(event)) => match EVENT_HANDLER.get() {
                    Some(handler) => handler(event),
                    None => log::warn!("control: {event} with nobody to hear it"),
                },
                // The host starts a forked child with an empty line (see xtask's `process`).
                None if line == Ok("") => {}
                None => log::error!("control: the host sent a line that is not a message ({line:?}); ignored"),
            });
        }
    }
}
