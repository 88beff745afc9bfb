//! # libos-virtio-rng: the virtio entropy device (virtio 1.2 §5.4, device id 4)
//!
//! A virtio-rng device has one queue: the driver posts writable buffers, the device fills
//! them with entropy from the host (QEMU: the host's `getrandom`) and says how many bytes it
//! wrote (possibly fewer than asked). [`VirtioRng::read`] is that exchange, repeated until the
//! buffer is full; [`seed`] probes every device (virtio-mmio and modern PCI, whatever
//! `libos-virtio` finds) and credits [`SEED_BYTES`] bytes from each to the kernel's generator
//! ([`libos_core::random::add_entropy`]).
//!
//! Requests are **polled**, not interrupt-driven: the kernel asks the device for a seed at boot
//! (and when something calls [`VirtioRng::read`] again), a handful of small requests that the
//! host answers at once, so an interrupt route would cost more code than it saves time and would
//! need the one `unsafe` a handler's data pointer takes. This crate has no `unsafe` at all.
//!
//! Users: `libos` (feature `virtio-rng`), which calls [`seed`] during boot.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use libos_core::device::Devices;
use libos_core::{Errno, Result};
use libos_virtio::request::RequestQueue;
use libos_virtio::Transport;

/// The virtio device id of an entropy source.
pub const DEVICE_ID: u32 = 4;
/// The name the kernel's generator credits this source under.
pub const SOURCE: &str = "virtio-rng";
/// Bytes taken from each device at boot (the generator's whole key).
pub const SEED_BYTES: usize = libos_core::random::SEED_BYTES;
/// The request queue (the device's only one).
const REQUEST_QUEUE: u16 = 0;
/// Requests in flight at most: one caller at a time reads.
const MAX_QUEUE_SIZE: u16 = 8;
/// How long one request may take before the device is declared dead.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Replies per [`VirtioRng::read`] before giving up: a device that keeps answering with zero
/// bytes must not hold the boot forever.
const MAX_REPLIES: usize = 64;

/// One virtio-rng device.
pub struct VirtioRng {
    transport: Box<dyn Transport>,
    requests: RequestQueue,
}

/// A dropped driver resets its device first: the ring memory goes with the driver, and a live
/// device would read it later (QEMU's virtio-rng looks at its queue again when its rate-limit
/// period ends, and then found freed memory: "Guest moved used index from 1 to 0").
impl Drop for VirtioRng {
    fn drop(&mut self) {
        if !libos_virtio::reset(&*self.transport) {
            log::error!("virtio-rng at {}: the device did not confirm its reset", self.transport.describe());
        }
    }
}

impl core::fmt::Debug for VirtioRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioRng").field("transport", &self.transport.describe()).finish()
    }
}

impl VirtioRng {
    /// Initialises the device behind `transport` (no feature bits to negotiate, one queue,
    /// polled). Errors: `ENODEV` when it refuses the handshake or has no queue, `ENOMEM`.
    pub fn new(transport: Box<dyn Transport>) -> Result<VirtioRng> {
        libos_virtio::initialize(&*transport, 0)?;
        let requests = RequestQueue::new(&*transport, REQUEST_QUEUE, MAX_QUEUE_SIZE, false, Some(TIMEOUT)).map_err(|e| {
            transport.set_status(libos_virtio::status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        })?;
        libos_virtio::finish_initialization(&*transport);
        Ok(VirtioRng { transport, requests })
    }

    /// Where the device is (for logs).
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Fills `out` with the device's entropy. Errors: `EIO` when the device fails, stops
    /// answering (it is then reset and stays failed) or keeps answering with nothing.
    pub fn read(&self, out: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        for _ in 0..MAX_REPLIES {
            if filled == out.len() {
                return Ok(());
            }
            let written = self.requests.request(&*self.transport, &[], &mut [&mut out[filled..]]).map_err(|e| {
                if e == Errno::ETIMEDOUT {
                    log::error!("virtio-rng at {}: no reply within {TIMEOUT:?}; the device is dead", self.transport.describe());
                }
                Errno::EIO
            })?;
            // A device claiming more than it was given is broken; never trust it past the
            // buffer (the ring cannot have written more than the buffer anyway).
            filled += (written as usize).min(out.len() - filled);
        }
        if filled == out.len() {
            return Ok(());
        }
        log::error!("virtio-rng at {}: {filled} of {} bytes after {MAX_REPLIES} replies", self.transport.describe(), out.len());
        Err(Errno::EIO)
    }
}

/// Finds and initialises every virtio-rng device among `devices` (MMIO windows first, then PCI
/// functions); devices that fail to initialise are logged and skipped.
pub fn probe(devices: &Devices) -> Vec<VirtioRng> {
    let mut found = Vec::new();
    for (transport, _interrupt) in libos_virtio::probe_all(devices, DEVICE_ID) {
        let describe = transport.describe();
        match VirtioRng::new(transport) {
            Ok(device) => found.push(device),
            Err(e) => log::error!("virtio-rng at {describe}: cannot initialise the device: {e}"),
        }
    }
    found
}

/// Credits [`SEED_BYTES`] from each of `devices` to the kernel's generator; returns how many
/// devices gave them.
pub fn seed(devices: &[VirtioRng]) -> usize {
    let mut seeded = 0;
    for device in devices {
        let mut bytes = [0u8; SEED_BYTES];
        match device.read(&mut bytes) {
            Ok(()) => {
                libos_core::random::add_entropy(&bytes, SOURCE);
                log::info!("virtio-rng at {}: {SEED_BYTES} bytes into the kernel's generator", device.describe());
                seeded += 1;
            }
            Err(e) => log::error!("virtio-rng at {}: no entropy ({e})", device.describe()),
        }
    }
    seeded
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_virtio::testing::FakeTransport;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A device that answers each request with up to `per_reply` bytes counting up from a
    /// shared counter (0 = never answers... see `silent`).
    fn device(per_reply: usize) -> (VirtioRng, Arc<AtomicU8>) {
        libos_core::testing::shared_platform();
        let next = Arc::new(AtomicU8::new(1));
        let counter = next.clone();
        let transport = FakeTransport::sized(
            DEVICE_ID,
            libos_virtio::features::VERSION_1,
            Vec::new(),
            8,
            Box::new(move |_queue, input, writable| {
                assert!(input.is_empty(), "the driver sends nothing to an entropy device");
                let n = per_reply.min(writable);
                Some((0..n).map(|_| counter.fetch_add(1, Ordering::Relaxed)).collect())
            }),
        );
        (VirtioRng::new(Box::new(transport)).expect("the fake device initialises"), next)
    }

    #[test]
    fn short_replies_are_collected_until_the_buffer_is_full() {
        let (rng, _) = device(5);
        let mut out = [0u8; 32];
        rng.read(&mut out).unwrap();
        assert_eq!(out.to_vec(), (1..=32).collect::<Vec<u8>>());
    }

    #[test]
    fn a_device_that_gives_nothing_is_an_error_not_a_hang() {
        let (rng, _) = device(0);
        let mut out = [0u8; 8];
        assert_eq!(rng.read(&mut out), Err(Errno::EIO));
    }

    #[test]
    fn wrong_device_id_is_not_probed_and_empty_reads_need_no_request() {
        let (rng, next) = device(16);
        rng.read(&mut []).unwrap();
        assert_eq!(next.load(Ordering::Relaxed), 1, "no request for an empty read");
        assert!(probe(&Devices::default()).is_empty());
    }
}
