//! # libos-virtio-console: a virtio console port as a byte stream (virtio 1.2 §5.3, device id 3)
//!
//! libos uses a virtio console as the **control channel** to the process host (`./x`): the
//! host connects the port to a Unix socket, and the guest reads and writes bytes. Only port 0
//! is driven (`VIRTIO_CONSOLE_F_MULTIPORT` is not negotiated), so the device has two queues:
//! receive (0) and transmit (1).
//!
//! - [`VirtioConsole::write_all`] sends bytes (one request per call; the device takes them all
//!   or the call fails with `EIO`).
//! - [`VirtioConsole::read`] waits for the next bytes the host sends (one reader at a time;
//!   others wait for it). The receive request has no timeout: a control channel is quiet for
//!   as long as nothing happens.
//!
//! With an interrupt (virtio-mmio's line or PCI's MSI-X vector) readers and writers sleep
//! until the device answers; without one they poll, yielding between looks. The interrupt
//! handler finds the device through [`routed`], set once: a VM has one control channel, and a
//! static keeps this crate free of `unsafe`.
//!
//! Users: `libos` (feature `processes`), whose `control` module speaks the process protocol
//! over the first console found.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;

use core::time::Duration;
use libos_core::device::Devices;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_virtio::request::RequestQueue;
use libos_virtio::Transport;

/// The virtio device id of a console.
pub const DEVICE_ID: u32 = 3;
/// Port 0's receive queue (host to guest).
const RECEIVE_QUEUE: u16 = 0;
/// Port 0's transmit queue (guest to host).
const TRANSMIT_QUEUE: u16 = 1;
/// Requests in flight at most on each queue.
const MAX_QUEUE_SIZE: u16 = 8;
/// How long the host may take to take bytes the guest sends.
const TRANSMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One virtio console (port 0).
pub struct VirtioConsole {
    transport: Box<dyn Transport>,
    receive: RequestQueue,
    transmit: RequestQueue,
    /// One reader at a time: bytes arrive in order, so two posted receive buffers could be
    /// filled in an order their readers would not see.
    reader: SpinLock<()>,
}

impl core::fmt::Debug for VirtioConsole {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioConsole").field("transport", &self.transport.describe()).finish()
    }
}

/// A dropped driver resets its device first: the rings go with the driver.
impl Drop for VirtioConsole {
    fn drop(&mut self) {
        if !libos_virtio::reset(&*self.transport) {
            log::error!("virtio-console at {}: the device did not confirm its reset", self.transport.describe());
        }
    }
}

static ROUTED: spin::Once<Arc<VirtioConsole>> = spin::Once::new();

/// The console whose interrupt is routed (the first one [`probe`] found with an interrupt).
pub fn routed() -> Option<&'static Arc<VirtioConsole>> {
    ROUTED.get()
}

fn interrupt_handler(_data: usize) {
    if let Some(console) = ROUTED.get() {
        console.handle_interrupt();
    }
}

impl VirtioConsole {
    /// Initialises the device behind `transport`: no feature bits beyond `VERSION_1`, port 0's
    /// two queues, polled until an interrupt is routed. Errors: `ENODEV` when it refuses the
    /// handshake or lacks a queue, `ENOMEM`.
    pub fn new(transport: Box<dyn Transport>) -> Result<VirtioConsole> {
        libos_virtio::initialize(&*transport, 0)?;
        let queue = |index, timeout| {
            RequestQueue::new(&*transport, index, MAX_QUEUE_SIZE, false, timeout).map_err(|e| {
                transport.set_status(libos_virtio::status::FAILED);
                if e == Errno::ENOENT { Errno::ENODEV } else { e }
            })
        };
        let receive = queue(RECEIVE_QUEUE, None)?;
        let transmit = queue(TRANSMIT_QUEUE, Some(TRANSMIT_TIMEOUT))?;
        libos_virtio::finish_initialization(&*transport);
        Ok(VirtioConsole { transport, receive, transmit, reader: SpinLock::new(()) })
    }

    /// Where the device is (for logs).
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Sends all of `bytes`. Errors: `EIO` when the device fails or does not take them.
    pub fn write_all(&self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.transmit.request(&*self.transport, &[bytes], &mut []).map(|_| ()).map_err(|e| {
            log::error!("virtio-console at {}: sending {} bytes: {e}", self.transport.describe(), bytes.len());
            Errno::EIO
        })
    }

    /// Waits for bytes from the host and stores them in `out`; returns how many (at least
    /// one unless `out` is empty). Errors: `EIO` when the device failed.
    pub fn read(&self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let _one = self.reader.lock();
        loop {
            let written = self.receive.request(&*self.transport, &[], &mut [&mut *out]).map_err(|_| Errno::EIO)?;
            let written = (written as usize).min(out.len());
            if written > 0 {
                return Ok(written);
            }
        }
    }

    /// The interrupt handler's work: acknowledge, wake the readers and writers.
    pub fn handle_interrupt(&self) {
        if self.transport.acknowledge_interrupt() != 0 {
            self.receive.handle_interrupt();
            self.transmit.handle_interrupt();
        }
    }

    fn use_interrupt(&self, irq: u32) {
        self.receive.use_interrupt(irq);
        self.transmit.use_interrupt(irq);
    }
}

/// Finds and initialises the first virtio console among `devices` (virtio-mmio windows first,
/// then PCI functions) and routes its interrupt. `None` when there is none or it fails (logged).
pub fn probe(devices: &Devices) -> Option<Arc<VirtioConsole>> {
    for (transport, interrupt) in libos_virtio::probe_all(devices, DEVICE_ID) {
        let describe = transport.describe();
        let console = match VirtioConsole::new(transport) {
            Ok(console) => Arc::new(console),
            Err(e) => {
                log::error!("virtio-console at {describe}: cannot initialise the device: {e}");
                continue;
            }
        };
        if let Some(irq) = interrupt {
            if ROUTED.get().is_none() {
                match libos_virtio::route_interrupt(&*console.transport, irq, interrupt_handler, 0) {
                    Ok(()) => {
                        ROUTED.call_once(|| console.clone());
                        console.use_interrupt(irq);
                    }
                    Err(why) => log::info!("virtio-console at {describe}: {why}; polling"),
                }
            }
        }
        return Some(console);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_virtio::testing::FakeTransport;
    use std::sync::Mutex;


    /// A console whose host echoes every sent byte back, upper-cased, on the next receive.
    fn echoing() -> VirtioConsole {
        libos_core::testing::shared_platform();
        let pending: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let transport = FakeTransport::sized(
            DEVICE_ID,
            libos_virtio::features::VERSION_1,
            Vec::new(),
            8,
            Box::new(move |queue, input, writable| {
                let mut pending = pending.lock().unwrap();
                if queue == TRANSMIT_QUEUE {
                    pending.extend(input.iter().map(u8::to_ascii_uppercase));
                    return Some(Vec::new());
                }
                let n = pending.len().min(writable);
                Some(pending.drain(..n).collect())
            }),
        );
        VirtioConsole::new(Box::new(transport)).expect("the fake console initialises")
    }

    #[test]
    fn bytes_sent_come_back_through_the_receive_queue() {
        let console = echoing();
        console.write_all(b"fork\n").unwrap();
        let mut out = [0u8; 3];
        assert_eq!(console.read(&mut out), Ok(3));
        assert_eq!(&out, b"FOR");
        let mut rest = [0u8; 16];
        assert_eq!(console.read(&mut rest), Ok(2));
        assert_eq!(&rest[..2], b"K\n");
        assert_eq!(console.write_all(b""), Ok(()));
        assert_eq!(console.read(&mut []), Ok(0));
    }

    #[test]
    fn no_console_is_found_among_no_devices() {
        assert!(probe(&Devices::default()).is_none());
    }
}
