//! # libos-virtio: virtio transports and virtqueues for libos drivers
//!
//! What every virtio driver of libos needs, whatever the device:
//!
//! - [`Transport`]: the device's control plane (status, feature negotiation, queue setup,
//!   notifications, configuration space, interrupt status, shared-memory regions), implemented
//!   by [`mmio::MmioTransport`] (virtio-mmio version 1 "legacy" and version 2) and
//!   [`pci::PciTransport`] (modern virtio-pci over ECAM, with BAR assignment and the
//!   shared-memory capability);
//! - [`queue::SplitQueue`]: a split virtqueue with indirect descriptors whose descriptors point
//!   straight at the caller's buffers (no bounce copy), translated with
//!   [`libos_core::hal::Platform::virt_to_phys`] and split where the physical pages are not
//!   contiguous;
//! - [`request::RequestQueue`]: requests that each wait for their own reply, several in
//!   flight, interrupt-driven or polled, with a timeout that resets a dead device;
//! - [`probe_mmio`], [`probe_pci`] and [`initialize`]: finding devices among what the platform
//!   discovered ([`libos_core::device::Devices`]) and the status/feature handshake;
//! - [`testing::FakeTransport`] (feature `testing`): a fake device that answers through the
//!   real rings, for host tests of drivers.
//!
//! Users: `libos-fs-virtiofs` (device id 26), `libos-net` (virtio-net), `libos-block` (virtio-blk).
//!
//! ## Why our own transport and queue instead of `virtio-drivers`
//! `virtio-drivers` 0.13 rejects device id 26 in both transports (its `DeviceType` ends at 25,
//! `MmioTransport::new` fails with `InvalidDeviceID`, `PciTransport::new` with
//! `InvalidDeviceId(0x105a)`) and exposes no shared-memory regions (PCI capability type 8, MMIO
//! `SHMSel`). Implementing its public `Transport` trait ourselves was the alternative: its
//! `VirtQueue` (non-blocking `add`/`pop_used` by token, indirect descriptors) would have served.
//! We did not take it because (1) the transports (device id, shared memory, MSI-X) had to be
//! ours anyway, which is most of the code; (2) its queue size is a const generic, while
//! virtio-fs takes what the device offers (QEMU: up to 1024), and its `Hal` trait would be a
//! second DMA/address abstraction beside `libos_core::hal::Platform`; (3) the split ring is
//! about 300 lines against the virtio 1.2 spec (§2.7), host-tested here against a fake device
//! that walks the rings ([`testing::FakeTransport`]).
//!
//! `unsafe` is confined to register access (`mmio`, `pci`), DMA memory and the ring (`queue`),
//! each with its own `SAFETY` argument. It is a new crate (not named in ARCHITECTURE.md) so that
//! the network driver shares the transports with virtio-fs instead of a second copy living in
//! `fs-virtiofs`; like the drivers' named modules, it is allowed `unsafe` for device access.
//! DMA addresses come from `libos_core::hal::Platform::virt_to_phys`, so there is no second
//! `Hal` to keep in sync with libos-core.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod mmio;
pub mod pci;
pub mod queue;
pub mod request;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use libos_core::hal::MemoryRegion;
use libos_core::{Errno, Result};

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready: the device may process queues.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// Device-independent feature bits (virtio 1.2 §6).
pub mod features {
    /// Indirect descriptor tables (`VIRTIO_F_INDIRECT_DESC`).
    pub const INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event`/`avail_event` notification suppression (`VIRTIO_F_EVENT_IDX`; not used).
    pub const EVENT_IDX: u64 = 1 << 29;
    /// The device follows virtio 1.0+ (`VIRTIO_F_VERSION_1`); required by modern transports.
    pub const VERSION_1: u64 = 1 << 32;
}

/// The driver-side addresses of one virtqueue, physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAddresses {
    /// Descriptor table.
    pub descriptors: u64,
    /// Available ("driver") ring.
    pub available: u64,
    /// Used ("device") ring.
    pub used: u64,
}

/// A virtio device's control plane, whatever the bus.
pub trait Transport: Send + Sync {
    /// A short name for messages (`"virtio-mmio v1 @0xfeb02e00"`).
    fn describe(&self) -> String;

    /// The virtio device id (26 for virtio-fs).
    fn device_id(&self) -> u32;

    /// True for transports that require `VIRTIO_F_VERSION_1` (virtio-mmio v2, modern PCI);
    /// false for legacy virtio-mmio, whose queue layout and feature window predate it.
    fn is_modern(&self) -> bool;

    /// The device's feature bits.
    fn device_features(&self) -> u64;

    /// Writes the driver's accepted feature bits.
    fn set_driver_features(&self, features: u64);

    /// Reads the device status.
    fn status(&self) -> u8;

    /// Writes the device status (0 resets the device).
    fn set_status(&self, status: u8);

    /// The largest size the device allows for queue `queue`; 0 when the queue does not exist.
    fn max_queue_size(&self, queue: u16) -> u16;

    /// Tells the device where queue `queue` of `size` entries lives and enables it. Legacy
    /// transports need the layout [`queue::SplitQueue`] uses (one page-aligned block, used ring
    /// on the next page boundary).
    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()>;

    /// Notifies the device that queue `queue` has new buffers.
    fn notify(&self, queue: u16);

    /// Reads device configuration space at `offset` into `buf` (byte accesses; consistent
    /// across a configuration change where the transport has a generation counter). Bytes
    /// past the configuration space read as 0.
    ///
    /// Errors: `EIO` when the device kept changing its configuration generation for
    /// [`CONFIG_READ_TRIES`] tries (see [`read_consistent`]).
    fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()>;

    /// Reads and acknowledges the interrupt status (bit 0: used buffers, bit 1: configuration
    /// change). Returns the bits that were set.
    fn acknowledge_interrupt(&self) -> u32;

    /// Shared-memory region `id` of the device (e.g. virtio-fs's DAX window, id 0), if the
    /// device has it. Physical addresses.
    fn shared_memory(&self, id: u8) -> Option<MemoryRegion>;

    /// Prepares device interrupt `interrupt` before the queues are set up (MSI-X: binds the
    /// vector and programs the table, masked). Default: nothing to prepare (wired interrupts).
    /// Errors: the platform's (`ENOSYS`: no way to route it; the driver polls).
    fn prepare_interrupt(&self, interrupt: u32) -> Result<()> {
        let _ = interrupt;
        Ok(())
    }

    /// Lets `interrupt` through once its handler is registered (default: the platform unmasks
    /// the wired line). Errors as [`libos_core::hal::Platform::enable_device_interrupt`].
    fn enable_interrupt(&self, interrupt: u32) -> Result<()> {
        libos_core::hal::platform().enable_device_interrupt(interrupt)
    }
}

/// A borrowed transport is a transport: a test keeps a `&'static` fake device
/// ([`testing::FakeTransport`]) while the driver owns `Box::new(&FAKE)`.
impl<T: Transport + ?Sized> Transport for &T {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn device_id(&self) -> u32 {
        (**self).device_id()
    }
    fn is_modern(&self) -> bool {
        (**self).is_modern()
    }
    fn device_features(&self) -> u64 {
        (**self).device_features()
    }
    fn set_driver_features(&self, features: u64) {
        (**self).set_driver_features(features);
    }
    fn status(&self) -> u8 {
        (**self).status()
    }
    fn set_status(&self, status: u8) {
        (**self).set_status(status);
    }
    fn max_queue_size(&self, queue: u16) -> u16 {
        (**self).max_queue_size(queue)
    }
    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        (**self).setup_queue(queue, size, addresses)
    }
    fn notify(&self, queue: u16) {
        (**self).notify(queue);
    }
    fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        (**self).read_config(offset, buf)
    }
    fn acknowledge_interrupt(&self) -> u32 {
        (**self).acknowledge_interrupt()
    }
    fn shared_memory(&self, id: u8) -> Option<MemoryRegion> {
        (**self).shared_memory(id)
    }
    fn prepare_interrupt(&self, interrupt: u32) -> Result<()> {
        (**self).prepare_interrupt(interrupt)
    }
    fn enable_interrupt(&self, interrupt: u32) -> Result<()> {
        (**self).enable_interrupt(interrupt)
    }
}

/// How many times a configuration read is tried while the device changes its configuration
/// generation under it. A real device changes it rarely (a resize, a link change), so a few
/// tries always suffice; one that changes it every time is broken, and must not keep a driver
/// spinning for ever.
pub const CONFIG_READ_TRIES: u32 = 16;

/// Runs `read` until `generation` reads the same before and after it (virtio 1.2 §2.5.1:
/// configuration bytes read across a change may mix two versions), at most
/// [`CONFIG_READ_TRIES`] times. Errors: `EIO` when the generation never held still.
pub fn read_consistent(mut generation: impl FnMut() -> u32, mut read: impl FnMut()) -> Result<()> {
    for _ in 0..CONFIG_READ_TRIES {
        let before = generation();
        read();
        if generation() == before {
            return Ok(());
        }
    }
    log::error!("virtio: the configuration generation changed on each of {CONFIG_READ_TRIES} reads");
    Err(Errno::EIO)
}

/// Resets the device and negotiates features: the device's features intersected with `wanted`
/// (plus `VERSION_1` on modern transports, which must accept it). Leaves the device in
/// `ACKNOWLEDGE | DRIVER | FEATURES_OK` (legacy: without `FEATURES_OK`): set up the queues, then
/// call [`finish_initialization`]. Returns the negotiated features.
///
/// Errors: `ENODEV` when a modern device does not offer `VERSION_1` or refuses the features.
pub fn initialize(transport: &dyn Transport, wanted: u64) -> Result<u64> {
    initialize_with(transport, |offered| offered & wanted)
}

/// [`initialize`] for drivers whose features depend on each other: `choose` gets the device's
/// features and returns the ones to accept (a subset of them).
pub fn initialize_with(transport: &dyn Transport, choose: impl FnOnce(u64) -> u64) -> Result<u64> {
    transport.set_status(0);
    transport.set_status(status::ACKNOWLEDGE);
    transport.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let offered = transport.device_features();
    let mut accepted = offered & choose(offered);
    if transport.is_modern() {
        if offered & features::VERSION_1 == 0 {
            transport.set_status(status::FAILED);
            return Err(Errno::ENODEV);
        }
        accepted |= features::VERSION_1;
    } else {
        // The legacy feature window has 32 bits.
        accepted &= u64::from(u32::MAX);
    }
    transport.set_driver_features(accepted);
    if transport.is_modern() {
        transport.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        if transport.status() & status::FEATURES_OK == 0 {
            transport.set_status(status::FAILED);
            return Err(Errno::ENODEV);
        }
    }
    Ok(accepted)
}

/// Sets `DRIVER_OK`: the device may start processing its queues.
pub fn finish_initialization(transport: &dyn Transport) {
    let features_ok = if transport.is_modern() { status::FEATURES_OK } else { 0 };
    transport.set_status(status::ACKNOWLEDGE | status::DRIVER | features_ok | status::DRIVER_OK);
}

/// How many times [`reset`] reads the status back waiting for the reset to show.
const RESET_POLLS: u32 = 1_000_000;

/// Resets the device (status 0) and waits until it reads back 0: from then on the device
/// touches none of the driver's memory, so its rings may be freed. False when the device never
/// showed the reset (broken beyond what a driver can contain; the caller logs it).
pub fn reset(transport: &dyn Transport) -> bool {
    transport.set_status(0);
    let mut polls = 0;
    while transport.status() != 0 && polls < RESET_POLLS {
        core::hint::spin_loop();
        polls += 1;
    }
    polls < RESET_POLLS
}

/// Routes device interrupt `irq` of `transport` to `handler(data)`: registers the handler and
/// lets the interrupt through (wired line or MSI-X vector). The error says which step failed,
/// for the driver's log; the driver then keeps polling.
pub fn route_interrupt(transport: &dyn Transport, irq: u32, handler: fn(usize), data: usize) -> core::result::Result<(), String> {
    libos_core::device::set_interrupt_handler(irq, handler, data).map_err(|e| alloc::format!("no handler slot for interrupt {irq} ({e})"))?;
    transport.enable_interrupt(irq).map_err(|e| alloc::format!("the platform cannot route interrupt {irq} ({e})"))
}

/// Every device with id `device_id`, virtio-mmio windows first, then modern PCI functions, as
/// boxed transports with the interrupt each completes with (the MMIO slot's line, the PCI
/// function's MSI-X vector): what a driver's probe walks.
pub fn probe_all(devices: &libos_core::device::Devices, device_id: u32) -> Vec<(Box<dyn Transport>, Option<u32>)> {
    let mut found: Vec<(Box<dyn Transport>, Option<u32>)> = Vec::new();
    for (transport, interrupt) in probe_mmio(devices, device_id) {
        found.push((Box::new(transport), interrupt));
    }
    for transport in probe_pci(devices, device_id) {
        let interrupt = transport.msi_interrupt();
        found.push((Box::new(transport), interrupt));
    }
    found
}

/// The virtio-mmio devices with id `device_id` among the windows the platform discovered,
/// with the platform interrupt of each.
pub fn probe_mmio(devices: &libos_core::device::Devices, device_id: u32) -> Vec<(mmio::MmioTransport, Option<u32>)> {
    devices
        .virtio_mmio
        .iter()
        .filter_map(|slot| {
            // SAFETY: the platform reported this window as a virtio-mmio register block from its
            // firmware tables, and maps all device memory below its device limit.
            let transport = unsafe { mmio::MmioTransport::probe(slot.base, slot.size) }?;
            (transport.device_id() == device_id).then_some((transport, slot.interrupt))
        })
        .collect()
}

/// The modern virtio-pci functions with id `device_id` on the PCIe hosts the platform
/// discovered; each one's MSI-X interrupt number is [`pci::PciTransport::msi_interrupt`].
pub fn probe_pci(devices: &libos_core::device::Devices, device_id: u32) -> Vec<pci::PciTransport> {
    devices
        .pci
        .iter()
        // SAFETY: the platform reported these ECAM windows from its firmware tables and maps
        // device memory (ECAM and the BAR windows) below its device limit.
        .flat_map(|host| unsafe { pci::probe(host, device_id) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn a_configuration_generation_that_never_holds_still_gives_eio_after_bounded_tries() {
        let generation = Cell::new(0u32);
        let reads = Cell::new(0u32);
        let result = read_consistent(
            || {
                generation.set(generation.get() + 1); // changes on every look
                generation.get()
            },
            || reads.set(reads.get() + 1),
        );
        assert_eq!(result, Err(Errno::EIO));
        assert_eq!(reads.get(), CONFIG_READ_TRIES);
    }

    #[test]
    fn a_configuration_read_is_retried_until_the_generation_holds() {
        let looks = Cell::new(0u32);
        let reads = Cell::new(0u32);
        // The generation changes during the first two reads, then stays.
        let result = read_consistent(
            || {
                looks.set(looks.get() + 1);
                looks.get().min(5)
            },
            || reads.set(reads.get() + 1),
        );
        assert_eq!(result, Ok(()));
        assert_eq!(reads.get(), 3);
    }
}
