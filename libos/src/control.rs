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
//! - [`call`] sends one request and waits for its reply; calls are serialized (the protocol
//!   has one request outstanding at a time).
//! - A fork copies the whole VM while the forking thread waits in [`call`]: the child VM
//!   resumes in that same wait, with its reader thread blocked in the same read, and its
//!   reply (`reply child PID PPID`) comes through its own channel. Nothing here knows which
//!   VM it runs in until that reply arrives.
//!
//! Without a console (a VM started without the process host) [`call`] fails with `ENOSYS`, so
//! `fork` behaves as it did before processes existed.

use alloc::sync::Arc;
use libos_core::blocking::{Mutex, WaitQueue};
use libos_core::sync::IrqSpinLock;
use libos_core::{Errno, Result};
use libos_process_protocol::{Event, HostMessage, LineBuffer, Reply, Request};
use libos_virtio_console::VirtioConsole;

/// The channel found at boot.
struct Channel {
    console: Arc<VirtioConsole>,
    /// Held by the caller whose request is outstanding.
    calls: Mutex<()>,
    /// The reply to the outstanding request, once it came.
    reply: IrqSpinLock<Option<Reply>>,
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
    CHANNEL.call_once(|| Channel { console, calls: Mutex::new(()), reply: IrqSpinLock::new(None), replied: WaitQueue::new() });
    if let Err(e) = libos_sched::thread::Builder::new().name("control").spawn(read_forever) {
        log::error!("control: cannot start the reader thread ({e}); fork and friends fail with ENOSYS");
    }
}

/// Whether this VM has a process host to talk to.
pub fn available() -> bool {
    CHANNEL.get().is_some()
}

/// Installs the function that hears events (posix-shim's; the first call wins). It runs on the
/// reader thread, so it must not wait for another event.
pub fn set_event_handler(handler: fn(Event)) {
    EVENT_HANDLER.call_once(|| handler);
}

/// Sends `request` and waits for the host's reply. Errors: `ENOSYS` without a channel, `EIO`
/// when the channel fails.
pub fn call(request: Request) -> Result<Reply> {
    let channel = CHANNEL.get().ok_or(Errno::ENOSYS)?;
    let _outstanding = channel.calls.lock();
    *channel.reply.lock() = None;
    send_on(channel, request)?;
    let mut reply = None;
    channel.replied.wait_until(|| {
        reply = channel.reply.lock().take();
        reply.is_some()
    });
    reply.ok_or(Errno::EIO)
}

/// Sends `request` without waiting for a reply (the host sends none to `exit`). Errors as
/// [`call`].
pub fn send(request: Request) -> Result<()> {
    send_on(CHANNEL.get().ok_or(Errno::ENOSYS)?, request)
}

fn send_on(channel: &Channel, request: Request) -> Result<()> {
    let line = alloc::format!("{request}\n");
    channel.console.write_all(line.as_bytes())
}

/// The reader thread: lines in, replies to [`call`], events to the handler.
fn read_forever() {
    let Some(channel) = CHANNEL.get() else { return };
    let mut lines = LineBuffer::new();
    let mut buffer = [0u8; 256];
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
                Some(HostMessage::Reply(reply)) => {
                    *channel.reply.lock() = Some(reply);
                    channel.replied.wake_all();
                }
                Some(HostMessage::Event(event)) => match EVENT_HANDLER.get() {
                    Some(handler) => handler(event),
                    None => log::warn!("control: {event} with nobody to hear it"),
                },
                None => log::error!("control: the host sent a line that is not a message ({line:?}); ignored"),
            });
        }
    }
}
