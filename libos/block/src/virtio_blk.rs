//! The virtio-blk driver (virtio 1.2 §5.2) as a [`BlockDevice`].
//!
//! - **Transports**: whatever `libos-virtio` finds: virtio-mmio v1 (legacy) and v2, modern PCI.
//! - **Requests**: a 16-byte header (type, sector), the caller's buffers as they are (no bounce
//!   copy; split at page boundaries by the queue), a status byte. Several callers may have
//!   requests in flight on the one request queue ([`RequestQueue`]); completions wake their
//!   own caller through the device interrupt, or are polled where none is routable.
//! - **Durability**: with `VIRTIO_BLK_F_FLUSH` the device has a volatile write cache, so
//!   [`BlockDevice::flush`] sends `FLUSH`; virtio-blk has no FUA bit, so a FUA write is the
//!   write followed by a flush. Without the feature the device writes through and a flush has
//!   nothing to do.
//! - **Read-only** devices (`VIRTIO_BLK_F_RO`) refuse writes with `EROFS` before the device sees
//!   them. `DISCARD` is used where offered.
//! - **Failure**: a request the device answers with `IOERR` is `EIO`; `UNSUPP` is
//!   `EOPNOTSUPP`; no answer within the timeout resets the device and fails it: the requests
//!   in flight get `EIO` (the buffer cache keeps blocks whose write-back failed dirty, so they
//!   are written again by the next sync). The next request re-initialises the device (same
//!   features, capacity and block size, or it stays failed). Writes the device acknowledged
//!   into its volatile cache but that no flush covered before the reset may be gone: the next
//!   flush reports that with `EIO` (once), so an `fsync` does not claim durability it does
//!   not have. A malformed reply (no status byte written) is `EIO`.
//!
//! Multi-queue (`VIRTIO_BLK_F_MQ`) is not negotiated: with one CPU one queue is as fast, and
//! the queue already holds up to 256 requests in flight.
//!
//! This is the module of this crate allowed to use `unsafe` (reading the interrupt handler's
//! device pointer); the ring itself is `libos-virtio`'s.
#![allow(unsafe_code)]

use crate::{BlockDevice, SECTOR_SIZE, check_request, check_transfer};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use libos_core::device::Devices;
use libos_core::memory::PAGE;
use libos_core::sync::Once;
use libos_core::{Errno, Result};
use libos_virtio::request::{QueueStats, RequestQueue};
use libos_virtio::{Transport, features};

/// The virtio device id of a block device.
pub const DEVICE_ID: u32 = 2;
/// The request queue (the only one without multi-queue).
const REQUEST_QUEUE: u16 = 0;
/// The request queue's size cap.
const MAX_QUEUE_SIZE: u16 = 256;
/// Data buffers per request that travel without a heap allocation.
const INLINE_PARTS: usize = 4;
/// How long a request may take by default before the device is declared dead.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Feature bits (virtio 1.2 §5.2.3).
pub mod feature {
    /// `size_max` is the largest segment.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// `seg_max` is the most segments per request.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The device is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is the logical block size.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// The device has a volatile write cache and takes `FLUSH`.
    pub const FLUSH: u64 = 1 << 9;
    /// The device takes `DISCARD`.
    pub const DISCARD: u64 = 1 << 13;
}

/// Request types.
mod kind {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
    pub const DISCARD: u32 = 11;
}

/// Status byte values.
mod reply {
    pub const OK: u8 = 0;
    pub const IOERR: u8 = 1;
    pub const UNSUPP: u8 = 2;
}

/// Configuration space offsets (virtio 1.2 §5.2.4).
mod config {
    pub const CAPACITY: usize = 0;
    pub const SIZE_MAX: usize = 8;
    pub const SEG_MAX: usize = 12;
    pub const BLK_SIZE: usize = 20;
}

/// Counters for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The request queue's counters (requests, notifications, interrupts, waiting time).
    pub queue: QueueStats,
    /// Flushes sent to the device.
    pub flushes: u64,
}

/// One virtio-blk device.
pub struct VirtioBlkDevice {
    transport: Box<dyn Transport>,
    name: String,
    /// `GET_ID`'s answer, asked for on first use.
    serial: Once<String>,
    requests: RequestQueue,
    sectors: u64,
    block_size: u32,
    read_only: bool,
    volatile_cache: bool,
    discard: bool,
    max_transfer: usize,
    flushes: AtomicU64,
    /// The features negotiated at first (a re-initialised device must agree).
    negotiated: u64,
    /// Writes the device completed, and how many of them the last successful flush covered.
    writes_completed: AtomicU64,
    writes_flushed: AtomicU64,
    /// Set when the device was reset with completed writes no flush covered: the next flush
    /// reports `EIO`.
    unflushed_lost: AtomicBool,
    /// Held while the device is brought back after a failure (one at a time).
    reconnecting: libos_core::sync::SpinLock<()>,
}

impl core::fmt::Debug for VirtioBlkDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioBlkDevice").field("name", &self.name).field("transport", &self.transport.describe()).finish()
    }
}

/// The `/dev` name of the `index`th disk: `vda`, ..., `vdz`, `vdaa`, ... as on Linux.
pub fn disk_name(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index;
    loop {
        letters.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    letters.reverse();
    let mut name = String::from("vd");
    name.extend(letters.into_iter().map(char::from));
    name
}

/// Finds and initialises every virtio-blk device among `devices`, naming them `vda`, `vdb`,
/// ... in discovery order (MMIO windows first, then PCI functions). Devices that fail to
/// initialise are logged and skipped. `timeout` as in [`RequestQueue::new`].
pub fn probe(devices: &Devices, timeout: Option<Duration>) -> Vec<Arc<VirtioBlkDevice>> {
    let mut found = Vec::new();
    for (transport, interrupt) in libos_virtio::probe_all(devices, DEVICE_ID) {
        let describe = transport.describe();
        match VirtioBlkDevice::new(transport, disk_name(found.len()), interrupt, timeout) {
            Ok(device) => found.push(device),
            Err(e) => log::error!("virtio-blk at {describe}: cannot initialise the device: {e}"),
        }
    }
    found
}

fn read_config_u32(transport: &dyn Transport, offset: usize) -> Result<u32> {
    let mut raw = [0u8; 4];
    transport.read_config(offset, &mut raw)?;
    Ok(u32::from_le_bytes(raw))
}

impl VirtioBlkDevice {
    /// Initialises the device behind `transport` as `/dev/NAME`: features, capacity, block
    /// size, the request queue, the interrupt (or polling when `interrupt` is `None` or cannot
    /// be routed).
    ///
    /// Errors: `ENODEV` when the device refuses the handshake or lacks a request queue,
    /// `EINVAL` for a nonsensical configuration (block size not a power of two >= 512),
    /// `ENOMEM`.
    pub fn new(transport: Box<dyn Transport>, name: String, interrupt: Option<u32>, timeout: Option<Duration>) -> Result<Arc<VirtioBlkDevice>> {
        let wanted = features::INDIRECT_DESC | feature::SIZE_MAX | feature::SEG_MAX | feature::RO | feature::BLK_SIZE | feature::FLUSH | feature::DISCARD;
        let negotiated = libos_virtio::initialize(&*transport, wanted)?;
        let fail = |e: Errno| {
            transport.set_status(libos_virtio::status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        let mut capacity = [0u8; 8];
        transport.read_config(config::CAPACITY, &mut capacity).map_err(fail)?;
        let sectors = u64::from_le_bytes(capacity);
        let block_size = if negotiated & feature::BLK_SIZE != 0 { read_config_u32(&*transport, config::BLK_SIZE).map_err(fail)? } else { SECTOR_SIZE as u32 };
        if !block_size.is_power_of_two() || u64::from(block_size) < SECTOR_SIZE || block_size > 64 * 1024 {
            log::error!("virtio-blk {name}: nonsensical block size {block_size}");
            return Err(fail(Errno::EINVAL));
        }
        // MSI-X must be set up before the queue (the queue names its vector).
        let interrupt = interrupt.filter(|&irq| match transport.prepare_interrupt(irq) {
            Ok(()) => true,
            Err(e) => {
                log::info!("virtio-blk {name}: no route for interrupt {irq} ({e}); polling");
                false
            }
        });
        let indirect = negotiated & features::INDIRECT_DESC != 0;
        let requests = RequestQueue::new(&*transport, REQUEST_QUEUE, MAX_QUEUE_SIZE, indirect, timeout).map_err(fail)?;
        // The largest transfer: the queue's segments minus header and status, each at most a
        // page (the queue splits buffers at page boundaries), within the device's own limits.
        let mut segments = requests.max_segments().saturating_sub(2);
        if negotiated & feature::SEG_MAX != 0 {
            let seg_max = read_config_u32(&*transport, config::SEG_MAX).map_err(fail)? as usize;
            if seg_max > 0 {
                segments = segments.min(seg_max.saturating_sub(2).max(1));
            }
        }
        let mut segment_bytes = PAGE as usize;
        if negotiated & feature::SIZE_MAX != 0 {
            let size_max = read_config_u32(&*transport, config::SIZE_MAX).map_err(fail)? as usize;
            if size_max > 0 {
                segment_bytes = segment_bytes.min(size_max);
            }
        }
        // A buffer that does not start on a page boundary takes one more segment.
        let max_transfer = (segments.saturating_sub(1) * segment_bytes).max(block_size as usize) / block_size as usize * block_size as usize;
        libos_virtio::finish_initialization(&*transport);
        let device = Arc::new(VirtioBlkDevice {
            transport,
            name,
            serial: Once::new(),
            requests,
            sectors,
            block_size,
            read_only: negotiated & feature::RO != 0,
            volatile_cache: negotiated & feature::FLUSH != 0,
            discard: negotiated & feature::DISCARD != 0,
            max_transfer,
            flushes: AtomicU64::new(0),
            negotiated,
            writes_completed: AtomicU64::new(0),
            writes_flushed: AtomicU64::new(0),
            unflushed_lost: AtomicBool::new(false),
            reconnecting: libos_core::sync::SpinLock::new(()),
        });
        if let Some(irq) = interrupt {
            device.route_interrupt(irq);
        }
        log::info!(
            "virtio-blk {} at {}: {} MiB, {}-byte blocks{}{}, up to {} KiB per request, {}",
            device.name,
            device.transport.describe(),
            (device.sectors * SECTOR_SIZE) >> 20,
            device.block_size,
            if device.read_only { ", read-only" } else { "" },
            if device.volatile_cache { ", write cache" } else { ", write-through" },
            device.max_transfer / 1024,
            match device.requests.interrupt() {
                Some(irq) => alloc::format!("interrupt {irq}"),
                None => String::from("polling"),
            }
        );
        Ok(device)
    }

    /// Registers the interrupt handler and asks the platform to route `irq`; on failure the
    /// device keeps polling.
    fn route_interrupt(self: &Arc<Self>, irq: u32) {
        // The handler holds one reference for ever: devices are never removed, and the
        // platform offers no way to unregister an interrupt.
        let data = Arc::into_raw(self.clone()) as usize;
        match libos_virtio::route_interrupt(&*self.transport, irq, interrupt_handler, data) {
            Ok(()) => self.requests.use_interrupt(irq),
            Err(why) => log::info!("virtio-blk {}: {why}; polling", self.name),
        }
    }

    /// The device's serial number (`GET_ID`), empty when it has none.
    fn read_serial(&self) -> String {
        let mut id = [0u8; 20];
        if self.send(kind::GET_ID, 0, &[], &mut [&mut id]).is_err() {
            return String::new();
        }
        let len = id.iter().position(|&b| b == 0).unwrap_or(id.len());
        core::str::from_utf8(&id[..len]).map(String::from).unwrap_or_default()
    }

    /// The serial number the host gave the disk (QEMU: `serial=`), possibly empty.
    pub fn serial(&self) -> &str {
        self.serial.call_once(|| self.read_serial())
    }

    /// Whether the device caches writes (so `flush` matters).
    pub fn has_volatile_cache(&self) -> bool {
        self.volatile_cache
    }

    /// Counters since boot.
    pub fn stats(&self) -> Stats {
        Stats { queue: self.requests.stats(), flushes: self.flushes.load(Ordering::Relaxed) }
    }

    /// Whether the device was declared dead.
    pub fn has_failed(&self) -> bool {
        self.requests.has_failed()
    }

    /// The interrupt handler's work: acknowledge, wake the waiters.
    pub fn handle_interrupt(&self) {
        if self.transport.acknowledge_interrupt() != 0 {
            self.requests.handle_interrupt();
        }
    }

    /// Brings the device back after a failure (`fail` confirmed its reset, so it holds no
    /// buffer of ours): features, the same geometry, a fresh queue, the interrupt, `DRIVER_OK`.
    /// Errors: `ENODEV` when the device now differs (it stays failed), the queue's errors.
    fn reconnect(&self) -> Result<()> {
        let _one = self.reconnecting.lock();
        if !self.requests.has_failed() {
            return Ok(()); // another caller was first
        }
        let transport = &*self.transport;
        let failed = |e: Errno| {
            log::error!("virtio-blk {}: cannot re-initialise the device: {e}", self.name);
            transport.set_status(libos_virtio::status::FAILED);
            e
        };
        let negotiated = libos_virtio::initialize(transport, self.negotiated).map_err(failed)?;
        let mut capacity = [0u8; 8];
        transport.read_config(config::CAPACITY, &mut capacity).map_err(failed)?;
        let block_size = if negotiated & feature::BLK_SIZE != 0 { read_config_u32(transport, config::BLK_SIZE).map_err(failed)? } else { SECTOR_SIZE as u32 };
        if negotiated != self.negotiated || u64::from_le_bytes(capacity) != self.sectors || block_size != self.block_size {
            return Err(failed(Errno::ENODEV));
        }
        let interrupt = self.requests.interrupt();
        if let Some(irq) = interrupt {
            transport.prepare_interrupt(irq).map_err(failed)?;
        }
        self.requests.restart(transport).map_err(failed)?;
        libos_virtio::finish_initialization(transport);
        if let Some(irq) = interrupt {
            if let Err(e) = transport.enable_interrupt(irq) {
                log::error!("virtio-blk {}: interrupt {irq} not routed again ({e})", self.name);
            }
        }
        // Nothing completes while the device is failed, so the counts are final for the
        // epoch that ended.
        if self.volatile_cache && self.writes_completed.load(Ordering::Acquire) > self.writes_flushed.load(Ordering::Acquire) {
            self.unflushed_lost.store(true, Ordering::Release);
        }
        let epoch = self.requests.resume();
        log::warn!("virtio-blk {}: device re-initialised after a failure (epoch {epoch})", self.name);
        Ok(())
    }

    /// One request: header, `data_out` for the device to read, `data_in` for it to fill, then
    /// the status byte. A device that failed earlier is brought back first.
    fn send(&self, kind: u32, sector: u64, data_out: &[&[u8]], data_in: &mut [&mut [u8]]) -> Result<()> {
        if self.requests.has_failed() {
            self.reconnect().map_err(|_| Errno::EIO)?;
        }
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        // The parts go to the queue as slices of slices: built on the stack for the requests
        // file systems and programs make (a few buffers), on the heap only beyond that.
        let mut readable_inline: [&[u8]; INLINE_PARTS + 1] = [&[]; INLINE_PARTS + 1];
        let mut readable_heap = Vec::new();
        let readable: &[&[u8]] = if data_out.len() <= INLINE_PARTS {
            readable_inline[0] = &header;
            readable_inline[1..=data_out.len()].copy_from_slice(data_out);
            &readable_inline[..=data_out.len()]
        } else {
            readable_heap.push(&header[..]);
            readable_heap.extend_from_slice(data_out);
            &readable_heap
        };
        // The status byte starts as a value the device never writes, so a reply that skips it
        // is caught.
        let mut status = [0xffu8; 1];
        let data_parts = data_in.len();
        let mut writable_inline: [&mut [u8]; INLINE_PARTS + 1] = core::array::from_fn(|_| &mut [][..]);
        let mut writable_heap: Vec<&mut [u8]> = Vec::new();
        let writable: &mut [&mut [u8]] = if data_parts <= INLINE_PARTS {
            for (slot, part) in writable_inline.iter_mut().zip(data_in.iter_mut()) {
                *slot = &mut **part;
            }
            writable_inline[data_parts] = &mut status;
            &mut writable_inline[..=data_parts]
        } else {
            writable_heap.extend(data_in.iter_mut().map(|part| &mut **part));
            writable_heap.push(&mut status);
            &mut writable_heap
        };
        let written = self.requests.request(&*self.transport, readable, writable).map_err(|e| {
            if e == Errno::ETIMEDOUT {
                log::error!("virtio-blk {}: no reply to request type {kind} at sector {sector}; the disk is dead", self.name);
                return Errno::EIO;
            }
            e
        })?;
        drop((writable_inline, writable_heap));
        match status[0] {
            reply::OK if written >= 1 => Ok(()),
            reply::OK => {
                log::warn!("virtio-blk {}: a reply of {written} bytes without its status", self.name);
                Err(Errno::EIO)
            }
            reply::UNSUPP => Err(Errno::EOPNOTSUPP),
            reply::IOERR => Err(Errno::EIO),
            other => {
                log::warn!("virtio-blk {}: unknown status {other:#x} for request type {kind}", self.name);
                Err(Errno::EIO)
            }
        }
    }
}

/// The device interrupt handler (`data`: the device, see `route_interrupt`).
fn interrupt_handler(data: usize) {
    // SAFETY: `data` came from `Arc::into_raw` of a device whose reference is never released,
    // so the device is alive for as long as the handler can run.
    let device = unsafe { &*(data as *const VirtioBlkDevice) };
    device.handle_interrupt();
}

impl BlockDevice for VirtioBlkDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    fn read(&self, sector: u64, buffers: &mut [&mut [u8]]) -> Result<()> {
        let len = check_request(self, sector, buffers.iter().map(|b| b.len()))?;
        if len == 0 {
            return Ok(());
        }
        self.send(kind::IN, sector, &[], buffers)
    }

    fn write(&self, sector: u64, buffers: &[&[u8]], fua: bool) -> Result<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let len = check_request(self, sector, buffers.iter().map(|b| b.len()))?;
        if len > 0 {
            self.send(kind::OUT, sector, buffers, &mut [])?;
            self.writes_completed.fetch_add(1, Ordering::AcqRel);
        }
        if fua { self.flush() } else { Ok(()) }
    }

    fn flush(&self) -> Result<()> {
        if !self.volatile_cache {
            return Ok(());
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        // A flush covers the writes completed before it is sent (virtio 1.2 §5.2.6.1).
        let covered = self.writes_completed.load(Ordering::Acquire);
        self.send(kind::FLUSH, 0, &[], &mut [])?;
        self.writes_flushed.fetch_max(covered, Ordering::AcqRel);
        if self.unflushed_lost.swap(false, Ordering::AcqRel) {
            log::error!("virtio-blk {}: the device was reset with writes in its cache no flush covered; they may be lost", self.name);
            return Err(Errno::EIO);
        }
        Ok(())
    }

    fn discard(&self, sector: u64, count: u64) -> Result<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        if !self.discard {
            return Err(Errno::EOPNOTSUPP);
        }
        let len = count.checked_mul(SECTOR_SIZE).and_then(|b| usize::try_from(b).ok()).ok_or(Errno::EINVAL)?;
        check_transfer(self, sector, len)?;
        let sectors = u32::try_from(count).map_err(|_| Errno::EINVAL)?;
        // One range: sector (u64), sector count (u32), flags (u32).
        let mut range = [0u8; 16];
        range[..8].copy_from_slice(&sector.to_le_bytes());
        range[8..12].copy_from_slice(&sectors.to_le_bytes());
        self.send(kind::DISCARD, 0, &[&range], &mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use libos_virtio::testing::FakeTransport;
    use std::sync::Mutex;

    fn platform() -> &'static libos_core::testing::FakePlatform {
        libos_core::testing::shared_platform()
    }

    /// A fake virtio-blk device over `disk`, offering `offered` features, answering every
    /// request type it knows and recording the types it saw.
    fn device(disk: Arc<Mutex<Vec<u8>>>, offered: u64, block_size: u32, seen: Arc<Mutex<Vec<u32>>>) -> Arc<VirtioBlkDevice> {
        device_with(disk, offered, block_size, seen, Arc::new(AtomicU32::new(0)), DEFAULT_TIMEOUT)
    }

    /// [`device`] whose next `hang_write` writes go unanswered.
    fn device_with(
        disk: Arc<Mutex<Vec<u8>>>,
        offered: u64,
        block_size: u32,
        seen: Arc<Mutex<Vec<u32>>>,
        hang_write: Arc<AtomicU32>,
        timeout: Duration,
    ) -> Arc<VirtioBlkDevice> {
        platform();
        let mut config = vec![0u8; 64];
        let sectors = disk.lock().unwrap().len() as u64 / SECTOR_SIZE;
        config[..8].copy_from_slice(&sectors.to_le_bytes());
        config[12..16].copy_from_slice(&128u32.to_le_bytes());
        config[20..24].copy_from_slice(&block_size.to_le_bytes());
        let respond = Box::new(move |queue: u16, input: &[u8], writable: usize| {
            assert_eq!(queue, REQUEST_QUEUE);
            let kind = u32::from_le_bytes(input[..4].try_into().unwrap());
            let sector = u64::from_le_bytes(input[8..16].try_into().unwrap()) as usize;
            seen.lock().unwrap().push(kind);
            let mut disk = disk.lock().unwrap();
            let start = sector * 512;
            match kind {
                kind::IN => {
                    let len = writable - 1;
                    let mut reply = disk[start..start + len].to_vec();
                    reply.push(reply::OK);
                    Some(reply)
                }
                kind::OUT if hang_write.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() => None,
                kind::OUT => {
                    let data = &input[16..];
                    disk[start..start + data.len()].copy_from_slice(data);
                    Some(vec![reply::OK])
                }
                kind::FLUSH => Some(vec![reply::OK]),
                kind::GET_ID => {
                    let mut id = b"disk-serial-1".to_vec();
                    id.resize(20, 0);
                    id.push(reply::OK);
                    Some(id)
                }
                _ => Some(vec![reply::UNSUPP]),
            }
        });
        let transport: &'static FakeTransport = Box::leak(Box::new(FakeTransport::sized(DEVICE_ID, offered, config, 256, respond)));
        VirtioBlkDevice::new(Box::new(transport), disk_name(0), None, Some(timeout)).unwrap()
    }

    /// Runs `f` while the fake clock moves past any timeout.
    fn with_time_passing<R>(f: impl FnOnce() -> R) -> R {
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = stop.clone();
        let clock = std::thread::spawn(move || {
            while !ticking.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                platform().advance(10_000_000);
            }
        });
        let result = f();
        stop.store(true, Ordering::Relaxed);
        clock.join().unwrap();
        result
    }

    #[test]
    fn a_timed_out_write_resets_the_device_which_comes_back_and_reports_unflushed_writes() {
        let disk = disk(64 * 1024);
        let hang = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dev = device_with(disk.clone(), feature::FLUSH, 512, seen, hang.clone(), Duration::from_millis(50));
        assert_eq!(dev.write(0, &[&[0xaa; 512]], false), Ok(()), "acknowledged, in the device's cache, not flushed");
        hang.store(1, Ordering::Relaxed);
        assert_eq!(with_time_passing(|| dev.write(8, &[&[0xbb; 512]], false)), Err(Errno::EIO));
        assert!(dev.has_failed());
        // Not EIO for ever: the next request re-initialises the device.
        assert_eq!(dev.write(8, &[&[0xbb; 512]], false), Ok(()));
        assert!(!dev.has_failed());
        let mut back = [0u8; 512];
        assert_eq!(dev.read(8, &mut [&mut back]), Ok(()));
        assert_eq!(back, [0xbb; 512]);
        assert_eq!(disk.lock().unwrap()[8 * 512], 0xbb);
        // The first write was only in the volatile cache of the device that was reset: the
        // flush says so once instead of promising durability.
        assert_eq!(dev.flush(), Err(Errno::EIO));
        assert_eq!(dev.flush(), Ok(()));
    }

    #[test]
    fn a_flushed_disk_reset_later_loses_nothing_and_reports_nothing() {
        let disk = disk(64 * 1024);
        let hang = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dev = device_with(disk, feature::FLUSH, 512, seen, hang.clone(), Duration::from_millis(50));
        assert_eq!(dev.write(0, &[&[0xaa; 512]], true), Ok(()), "a FUA write: written and flushed");
        hang.store(1, Ordering::Relaxed);
        assert_eq!(with_time_passing(|| dev.write(8, &[&[0xbb; 512]], false)), Err(Errno::EIO));
        assert_eq!(dev.flush(), Ok(()), "every completed write was flushed before the reset");
    }

    #[test]
    fn dirty_cached_blocks_survive_a_device_reset_and_reach_the_disk_at_the_next_sync() {
        let disk = disk(64 * 1024);
        let hang = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dev = device_with(disk.clone(), feature::FLUSH, 512, seen, hang.clone(), Duration::from_millis(50));
        let cache = crate::cache::BufferCache::new(dev.clone(), 1024, 64 * 1024).unwrap();
        cache.write(3, 0, &[0xcc; 1024]).unwrap();
        // The write-back and the cache's retry of it both time out.
        hang.store(2, Ordering::Relaxed);
        assert_eq!(with_time_passing(|| cache.sync()), Err(Errno::EIO), "the error is reported");
        assert_eq!(cache.dirty_blocks(), 1, "the block was not dropped");
        assert!(disk.lock().unwrap()[3 * 1024..4 * 1024].iter().all(|&b| b != 0xcc));
        assert_eq!(cache.sync(), Ok(()), "the re-initialised device takes it");
        assert_eq!(cache.dirty_blocks(), 0);
        assert!(disk.lock().unwrap()[3 * 1024..4 * 1024].iter().all(|&b| b == 0xcc));
    }

    fn disk(bytes: usize) -> Arc<Mutex<Vec<u8>>> {
        Arc::new(Mutex::new((0..bytes).map(|i| (i / 512) as u8).collect()))
    }

    #[test]
    fn names_follow_linux() {
        assert_eq!(disk_name(0), "vda");
        assert_eq!(disk_name(25), "vdz");
        assert_eq!(disk_name(26), "vdaa");
        assert_eq!(disk_name(27), "vdab");
        assert_eq!(disk_name(26 + 26 * 26), "vdaaa");
    }

    #[test]
    fn reads_and_writes_reach_the_disk_through_scattered_buffers() {
        let image = disk(64 * 1024);
        let blk = device(image.clone(), feature::FLUSH | feature::BLK_SIZE, 512, Arc::default());
        assert_eq!((blk.sectors(), blk.block_size(), blk.read_only()), (128, 512, false));
        let mut a = [0u8; 100];
        let mut b = [0u8; 412];
        blk.read(7, &mut [&mut a, &mut b]).unwrap();
        assert!(a.iter().chain(b.iter()).all(|&x| x == 7));
        let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
        blk.write(3, &[&data[..1000], &data[1000..]], false).unwrap();
        assert_eq!(&image.lock().unwrap()[3 * 512..5 * 512], &data[..]);
        assert_eq!(blk.serial(), "disk-serial-1");
    }

    #[test]
    fn requests_with_more_buffers_than_fit_on_the_stack_still_reach_the_disk() {
        let image = disk(64 * 1024);
        let blk = device(image.clone(), 0, 512, Arc::default());
        let data: Vec<u8> = (0..3072).map(|i| (i * 5) as u8).collect();
        let pieces: Vec<&[u8]> = data.chunks(512).collect();
        assert!(pieces.len() > INLINE_PARTS);
        blk.write(10, &pieces, false).unwrap();
        let mut back = vec![vec![0u8; 512]; 6];
        let mut parts: Vec<&mut [u8]> = back.iter_mut().map(|b| &mut b[..]).collect();
        blk.read(10, &mut parts).unwrap();
        assert_eq!(back.concat(), data);
        assert_eq!(&image.lock().unwrap()[10 * 512..16 * 512], &data[..]);
    }

    #[test]
    fn fua_writes_are_followed_by_a_flush_only_with_a_write_cache() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cached = device(disk(8192), feature::FLUSH, 512, seen.clone());
        cached.write(0, &[&[1u8; 512]], true).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![kind::OUT, kind::FLUSH]);
        assert_eq!(cached.stats().flushes, 1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let through = device(disk(8192), 0, 512, seen.clone());
        through.write(0, &[&[1u8; 512]], true).unwrap();
        through.flush().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![kind::OUT], "a write-through device needs no flush");
    }

    #[test]
    fn read_only_devices_refuse_writes_before_the_device_sees_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let blk = device(disk(8192), feature::RO, 512, seen.clone());
        assert!(blk.read_only());
        assert_eq!(blk.write(0, &[&[0u8; 512]], false), Err(Errno::EROFS));
        assert_eq!(blk.discard(0, 1), Err(Errno::EROFS));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn bad_transfers_are_einval_and_unsupported_requests_eopnotsupp() {
        let blk = device(disk(16384), feature::BLK_SIZE | feature::DISCARD, 4096, Arc::default());
        assert_eq!(blk.block_size(), 4096);
        assert_eq!(blk.read(1, &mut [&mut [0u8; 4096]]), Err(Errno::EINVAL));
        assert_eq!(blk.read(0, &mut [&mut [0u8; 512]]), Err(Errno::EINVAL));
        assert_eq!(blk.read(32, &mut [&mut [0u8; 4096]]), Err(Errno::EINVAL), "past the end");
        assert_eq!(blk.write(u64::MAX / 2, &[&[0u8; 4096]], false), Err(Errno::EINVAL));
        assert_eq!(blk.discard(0, 8), Err(Errno::EOPNOTSUPP), "the fake answers UNSUPP");
    }

    #[test]
    fn a_reply_without_its_status_byte_is_eio() {
        platform();
        let mut config = vec![0u8; 64];
        config[..8].copy_from_slice(&16u64.to_le_bytes());
        let respond = Box::new(|_: u16, _: &[u8]| Some(Vec::new()));
        let transport: &'static FakeTransport = Box::leak(Box::new(FakeTransport::new(DEVICE_ID, 0, config, 64, respond)));
        let blk = VirtioBlkDevice::new(Box::new(transport), disk_name(1), None, Some(DEFAULT_TIMEOUT)).unwrap();
        assert_eq!(blk.read(0, &mut [&mut [0u8; 512]]), Err(Errno::EIO));
        assert_eq!(blk.serial(), "");
    }

    #[test]
    fn nonsensical_block_sizes_are_refused() {
        platform();
        let mut config = vec![0u8; 64];
        config[20..24].copy_from_slice(&1000u32.to_le_bytes());
        let respond = Box::new(|_: u16, _: &[u8]| None);
        let transport: &'static FakeTransport =
            Box::leak(Box::new(FakeTransport::new(DEVICE_ID, feature::BLK_SIZE, config, 64, respond)));
        assert_eq!(VirtioBlkDevice::new(Box::new(transport), disk_name(0), None, None).unwrap_err(), Errno::EINVAL);
    }
}
