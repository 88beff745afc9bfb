//! The virtio-fs device (virtio 1.2 §5.11): finds it, reads its tag, sets up the high-priority
//! queue (0) and the request queue (1), and carries FUSE messages as a [`FuseChannel`].
//!
//! The request queue is a [`RequestQueue`] (several requests in flight, each waiting for its own
//! reply; interrupt-driven or polled; no bounce copy, except of parts in a DAX window, see
//! [`crate::bounce`]; a reply that does not come within the
//! timeout resets the device, and its callers get `EIO` once the reset shows). FORGETs go on
//! the high-priority queue as owned copies, fire-and-forget; callers waiting for room there
//! sleep on the request queue's waiters, which the one device interrupt wakes.
//!
//! After a failure the device can be brought back ([`FuseChannel::reconnect`]): reset (already
//! confirmed by the failure), features, both queues afresh, `DRIVER_OK`, in a new epoch. The
//! epoch is checked where requests are published, so nothing tied to the session before the
//! reset (a nodeid, a file handle, a FORGET) reaches the device after it.
//!
//! This is the named module of this crate allowed to use `unsafe` (publishing caller buffers to
//! the device).

use crate::channel::{DaxWindow, FuseChannel};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use libos_core::device::Devices;
use libos_core::memory::PAGE;
use libos_core::sync::IrqSpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};
use libos_virtio::queue::SplitQueue;
use libos_virtio::request::RequestQueue;
use libos_virtio::{Transport, features, status};

/// The virtio device id of virtio-fs.
pub const DEVICE_ID: u32 = 26;
/// Size of the tag field at the start of the configuration space.
pub const TAG_LEN: usize = 36;
/// Queue index of the high-priority queue (FORGET, BATCH_FORGET).
const HIPRIO_QUEUE: u16 = 0;
/// Queue index of the first (and only used) request queue.
const REQUEST_QUEUE: u16 = 1;
/// The request queue's size cap (QEMU's `queue-size` goes up to 1024).
const MAX_QUEUE_SIZE: u16 = 1024;
/// FORGETs are tiny and fire-and-forget: a small ring is plenty.
const HIPRIO_QUEUE_SIZE: u16 = 64;
/// How long a reply may take by default before the device is declared dead.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests published on the request queue.
    pub requests: u64,
    /// FORGET messages published on the high-priority queue.
    pub forgets: u64,
    /// Queue notifications written to the device (request and high-priority queues).
    pub notifications: u64,
    /// Device interrupts handled.
    pub interrupts: u64,
    /// Nanoseconds callers spent waiting for the device (after their first check found the
    /// reply not there yet): under `-icount` the polling or idle time to subtract from a
    /// workload's guest time to get the guest's own work.
    pub wait_ns: u64,
}

/// Reads the tag: NUL-padded UTF-8, not terminated when it is exactly 36 bytes. Errors: `EINVAL`
/// for an empty tag, one with a newline or a NUL followed by more text, or invalid UTF-8.
pub fn parse_tag(raw: &[u8; TAG_LEN]) -> Result<String> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(TAG_LEN);
    if len == 0 || raw[..len].contains(&b'\n') || raw[len..].iter().any(|&b| b != 0) {
        return Err(Errno::EINVAL);
    }
    core::str::from_utf8(&raw[..len]).map(String::from).map_err(|_| Errno::EINVAL)
}

struct Hiprio {
    queue: SplitQueue,
    /// Copies of the FORGETs in flight, by token (the caller's buffer is gone by then).
    buffers: Vec<Option<Box<[u8]>>>,
    /// The request queue's epoch this ring was set up in.
    epoch: u64,
}

impl Hiprio {
    fn new(queue: SplitQueue, epoch: u64) -> Hiprio {
        let buffers = (0..queue.size()).map(|_| None).collect();
        Hiprio { queue, buffers, epoch }
    }

    /// Frees the FORGETs the device is done with. Returns whether the device wrote a bad used
    /// entry (the caller fails the device).
    fn reclaim(&mut self) -> bool {
        while let Some((token, _)) = self.queue.pop_used() {
            if let Some(buffer) = self.buffers.get_mut(usize::from(token)) {
                *buffer = None;
            }
        }
        self.queue.take_fault().is_some()
    }
}

/// One virtio-fs device.
pub struct VirtioFsDevice {
    transport: Box<dyn Transport>,
    tag: String,
    /// The request queue; its waiters also wait for room on the high-priority queue.
    requests: RequestQueue,
    hiprio: IrqSpinLock<Hiprio>,
    /// How long a reply may take; `None`: forever (see [`probe`]).
    timeout: Option<Duration>,
    /// Whether `VIRTIO_F_INDIRECT_DESC` was negotiated (a re-initialised device must agree:
    /// the request queue's limits were given to the FUSE session).
    indirect: bool,
    /// Held while the device is brought back after a failure (one at a time).
    reconnecting: libos_core::sync::SpinLock<()>,
    forgets_sent: AtomicU64,
    hiprio_notifications: AtomicU64,
    /// The DAX window (shared-memory region 0), if the device has one.
    window: Option<Arc<DeviceWindow>>,
    /// The window was handed to a mount (it goes to one only).
    window_taken: core::sync::atomic::AtomicBool,
}

/// A device's DAX window in the kernel's address space: a region of guest-physical memory
/// (a 64-bit prefetchable PCI BAR) into which the host maps file ranges. The platform maps
/// such BAR windows as normal memory, so plain (unaligned, wide) loads work on it.
struct DeviceWindow {
    /// Virtual address of its first byte.
    base: usize,
    size: u64,
    /// The platform maps it as normal memory that programs may be given (`mmap`).
    program_accessible: bool,
}

impl DeviceWindow {
    /// The window of `transport`'s shared-memory region 0, if it has one big enough to use.
    fn of(transport: &dyn Transport, tag: &str) -> Option<Arc<DeviceWindow>> {
        let region = transport.shared_memory(0)?;
        let size = region.len();
        if size < crate::fs::DAX_CHUNK || region.start % PAGE != 0 || usize::try_from(region.end).is_err() {
            log::warn!("virtio-fs {tag:?}: DAX window {:#x}..{:#x} is unusable (smaller than 2 MiB or unaligned)", region.start, region.end);
            return None;
        }
        let platform = libos_core::hal::platform();
        let base = platform.phys_to_virt(region.start);
        // SAFETY: a virtio shared-memory region is memory the host maps files into: reading or
        // writing it has no side effects beyond the bytes themselves.
        let program_accessible = match unsafe { platform.make_program_accessible(region) } {
            Ok(()) => {
                // Programs may now pass buffers in it to system calls: requests bounce them.
                crate::bounce::register_window(base..base + size as usize);
                true
            }
            Err(e) => {
                log::info!("virtio-fs {tag:?}: the DAX window stays device memory ({e}): mmap of its files copies");
                false
            }
        };
        log::info!("virtio-fs {tag:?}: DAX window of {} MiB at {:#x}", size >> 20, region.start);
        Some(Arc::new(DeviceWindow { base, size, program_accessible }))
    }
}

impl DaxWindow for DeviceWindow {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: `[offset, offset + len)` lies inside the window (checked above), which the
        // platform maps for the kernel (normal memory, as a prefetchable BAR) and which only
        // this device's mount reads; no Rust reference to the window's bytes exists. The host
        // may change them meanwhile (they are a file's page cache): the copy then holds a mix
        // of old and new bytes, as a read racing a write gets on Linux. `buf` is a distinct
        // guest buffer, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping((self.base + offset as usize) as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn program_address(&self) -> Option<u64> {
        self.program_accessible.then_some(self.base as u64)
    }
}

impl core::fmt::Debug for VirtioFsDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioFsDevice").field("transport", &self.transport.describe()).field("tag", &self.tag).finish()
    }
}

/// Finds and initialises every virtio-fs device among `devices`. Devices that fail to
/// initialise are logged and skipped. `timeout`: how long a reply may take before the device
/// is declared dead; `None` waits forever, which deterministic benchmarks need: under QEMU's
/// `-icount sleep=off` the clock of a guest that halts jumps to its next timer deadline at
/// once, so any reply the guest waits for would "time out".
pub fn probe(devices: &Devices, timeout: Option<Duration>) -> Vec<Arc<VirtioFsDevice>> {
    let mut found = Vec::new();
    for (transport, interrupt) in libos_virtio::probe_all(devices, DEVICE_ID) {
        let describe = transport.describe();
        match VirtioFsDevice::new(transport, interrupt, timeout) {
            Ok(device) => found.push(device),
            Err(e) => log::error!("virtio-fs at {describe}: cannot initialise the device: {e}"),
        }
    }
    found
}

impl VirtioFsDevice {
    /// Initialises the device behind `transport`: features (indirect descriptors), queues, tag,
    /// interrupt (or polling when `interrupt` is `None` or the platform cannot route it).
    ///
    /// Errors: `EINVAL` for a bad tag, `ENODEV` when the device refuses the handshake or lacks
    /// a request queue, `ENOMEM`.
    pub fn new(transport: Box<dyn Transport>, interrupt: Option<u32>, timeout: Option<Duration>) -> Result<Arc<VirtioFsDevice>> {
        let negotiated = libos_virtio::initialize(&*transport, features::INDIRECT_DESC)?;
        let indirect = negotiated & features::INDIRECT_DESC != 0;
        let mut raw_tag = [0u8; TAG_LEN];
        transport.read_config(0, &mut raw_tag).inspect_err(|_| transport.set_status(status::FAILED))?;
        let tag = parse_tag(&raw_tag).inspect_err(|_| {
            log::error!("virtio-fs at {}: bad tag {:?} (empty, a newline, or not UTF-8)", transport.describe(), raw_tag);
            transport.set_status(status::FAILED);
        })?;
        let fail = |e: Errno| {
            transport.set_status(status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        // MSI-X must be set up before the queues (each queue names its vector).
        let interrupt = interrupt.filter(|&irq| match transport.prepare_interrupt(irq) {
            Ok(()) => true,
            Err(e) => {
                log::info!("virtio-fs {tag:?}: no route for interrupt {irq} ({e}); polling");
                false
            }
        });
        let mut hiprio = SplitQueue::new(&*transport, HIPRIO_QUEUE, HIPRIO_QUEUE_SIZE, false).map_err(fail)?;
        let requests = RequestQueue::new(&*transport, REQUEST_QUEUE, MAX_QUEUE_SIZE, indirect, timeout).map_err(fail)?;
        // Interrupts stay off on both queues until one is routed (`route_interrupt`).
        hiprio.set_interrupts(false);
        libos_virtio::finish_initialization(&*transport);
        let epoch = requests.epoch();
        let window = DeviceWindow::of(&*transport, &tag);
        let device = Arc::new(VirtioFsDevice {
            transport,
            tag,
            requests,
            hiprio: IrqSpinLock::new(Hiprio::new(hiprio, epoch)),
            timeout,
            indirect,
            reconnecting: libos_core::sync::SpinLock::new(()),
            forgets_sent: AtomicU64::new(0),
            hiprio_notifications: AtomicU64::new(0),
            window,
            window_taken: core::sync::atomic::AtomicBool::new(false),
        });
        if let Some(irq) = interrupt {
            device.route_interrupt(irq);
        }
        log::info!(
            "virtio-fs {:?} at {}: request queue of {} ({} descriptors), {}",
            device.tag,
            device.transport.describe(),
            device.requests.size(),
            if indirect { "indirect" } else { "direct" },
            match device.interrupt() {
                Some(irq) => alloc::format!("interrupt {irq}"),
                None => String::from("polling (no routable interrupt)"),
            }
        );
        Ok(device)
    }

    /// Registers the interrupt handler and asks the platform to route `irq`; when it cannot,
    /// the device keeps polling.
    fn route_interrupt(self: &Arc<Self>, irq: u32) {
        // The handler holds one reference for ever: devices are never removed, and the
        // platform offers no way to unregister an interrupt.
        let data = Arc::into_raw(self.clone()) as usize;
        match libos_virtio::route_interrupt(&*self.transport, irq, interrupt_handler, data) {
            Ok(()) => {
                self.hiprio.lock().queue.set_interrupts(true);
                self.requests.use_interrupt(irq);
            }
            Err(why) => log::info!("virtio-fs {:?}: {why}; polling", self.tag),
        }
    }

    /// The platform interrupt the device completes requests with, or `None` when it polls.
    pub fn interrupt(&self) -> Option<u32> {
        self.requests.interrupt()
    }

    /// The tag the host gave this share.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The device's shared-memory region `id` (0: the DAX window), if it has one.
    pub fn shared_memory(&self, id: u8) -> Option<libos_core::hal::MemoryRegion> {
        self.transport.shared_memory(id)
    }

    /// Counters since boot.
    pub fn stats(&self) -> Stats {
        let queue = self.requests.stats();
        Stats {
            requests: queue.requests,
            forgets: self.forgets_sent.load(Ordering::Relaxed),
            notifications: queue.notifications + self.hiprio_notifications.load(Ordering::Relaxed),
            interrupts: queue.interrupts,
            wait_ns: queue.wait_ns,
        }
    }

    /// Whether the device was declared dead (every request fails with `EIO`).
    pub fn has_failed(&self) -> bool {
        self.requests.has_failed()
    }

    /// The interrupt handler's work: acknowledge, wake every waiter (they look at the rings).
    pub fn handle_interrupt(&self) {
        if self.transport.acknowledge_interrupt() != 0 {
            self.requests.handle_interrupt();
        }
    }

    /// Declares the device dead on behalf of something started in `epoch`: resets it and
    /// releases the waiters once the reset shows (see [`RequestQueue::fail_epoch`]), then drops
    /// the FORGETs the device held. Nothing happens to a device that failed since (perhaps
    /// already brought back: its new rings are not to be touched).
    fn fail(&self, epoch: u64, why: core::fmt::Arguments<'_>) {
        self.requests.fail_epoch(&*self.transport, epoch, why);
        let mut hiprio = self.hiprio.lock();
        if hiprio.epoch == epoch && self.requests.has_failed() {
            hiprio.queue.abandon_all();
            hiprio.buffers.iter_mut().for_each(|buffer| *buffer = None);
        }
    }

    /// Sends a request, in `epoch` if given (see [`FuseChannel::request_in`]).
    fn send(&self, epoch: Option<u64>, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        let total: usize = request.iter().map(|p| p.len()).sum::<usize>() + reply.iter().map(|p| p.len()).sum::<usize>();
        if total > self.max_transfer() {
            return Err(Errno::E2BIG);
        }
        let started = self.requests.epoch();
        match self.requests.request_in(&*self.transport, epoch, request, reply) {
            Ok(written) => Ok(written as usize),
            Err(e) => {
                if e == Errno::ETIMEDOUT {
                    log::error!("virtio-fs {:?}: no reply to opcode {} within {:?}", self.tag, Self::opcode(request), self.timeout.unwrap_or_default());
                }
                if self.requests.epoch() != started {
                    // The device failed (perhaps this request timed out): drop its FORGETs too.
                    self.fail(started, format_args!("opcode {} failed with the device", Self::opcode(request)));
                    return Err(Errno::EIO);
                }
                Err(e)
            }
        }
    }

    /// When a request started now must have its reply (`None`: no timeout).
    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|timeout| Instant::now() + timeout)
    }

    fn opcode(request: &[&[u8]]) -> u32 {
        let header = request.first().copied().unwrap_or_default();
        header.get(4..8).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The device interrupt handler (`data`: the device, see `route_interrupt`).
fn interrupt_handler(data: usize) {
    // SAFETY: `data` came from `Arc::into_raw` of a device whose reference is never released,
    // so the device is alive for as long as the handler can run.
    let device = unsafe { &*(data as *const VirtioFsDevice) };
    device.handle_interrupt();
}

impl FuseChannel for VirtioFsDevice {
    fn dax_window(&self) -> Option<Arc<dyn DaxWindow>> {
        let window = self.window.clone()?;
        if self.window_taken.swap(true, Ordering::AcqRel) {
            log::warn!("virtio-fs {:?}: the DAX window already serves another mount; this one reads with READ requests", self.tag);
            return None;
        }
        Some(window)
    }

    fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        crate::bounce::send_bounced(request, reply, |request, reply| self.send(None, request, reply))
    }

    fn request_in(&self, epoch: u64, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        crate::bounce::send_bounced(request, reply, |request, reply| self.send(Some(epoch), request, reply))
    }

    fn send_forget(&self, request: &[u8]) -> Result<()> {
        self.send_forget_in(self.requests.epoch(), request)
    }

    fn send_forget_in(&self, epoch: u64, request: &[u8]) -> Result<()> {
        if self.has_failed() {
            return Err(Errno::EIO);
        }
        let copy: Box<[u8]> = request.into();
        let deadline = self.deadline();
        let mut copy = Some(copy);
        let mut error = None;
        let mut bad_used = false;
        let sent = self.requests.wait(deadline, || {
            let mut hiprio = self.hiprio.lock();
            if self.has_failed() {
                error = Some(Errno::EIO);
                return true;
            }
            if hiprio.epoch != epoch {
                error = Some(Errno::ESTALE); // the node belongs to a session before a reset
                return true;
            }
            if hiprio.reclaim() {
                bad_used = true;
                return true;
            }
            let Some(buffer) = copy.take() else { return true };
            // SAFETY: the buffer is moved into `hiprio.buffers` below and freed only when the
            // device returned it (`reclaim`) or the queue is abandoned after a reset.
            match unsafe { hiprio.queue.add(&[&buffer], &mut []) } {
                Ok(token) => {
                    hiprio.buffers[usize::from(token)] = Some(buffer);
                    if hiprio.queue.should_notify() {
                        self.transport.notify(HIPRIO_QUEUE);
                        self.hiprio_notifications.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Err(_) => {
                    copy = Some(buffer);
                    false
                }
            }
        });
        if bad_used {
            self.fail(epoch, format_args!("bad used entry on the high-priority queue"));
            return Err(Errno::EIO);
        }
        if let Some(e) = error {
            return Err(e);
        }
        if !sent {
            self.fail(epoch, format_args!("the high-priority queue stayed full for {:?}", self.timeout));
            return Err(Errno::EIO);
        }
        self.forgets_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.requests.epoch()
    }

    /// Brings a failed device back: `fail` confirmed its reset, so it holds no buffer of ours;
    /// features again (they must be the ones the session was sized for), both queues afresh,
    /// the interrupt again, `DRIVER_OK`, and only then requests in the new epoch.
    fn reconnect(&self) -> Result<u64> {
        let _one = self.reconnecting.lock();
        if !self.requests.has_failed() {
            return Ok(self.requests.epoch()); // nothing failed, or another caller was first
        }
        let transport = &*self.transport;
        let failed = |e: Errno| {
            log::error!("virtio-fs {:?}: cannot re-initialise the device: {e}", self.tag);
            transport.set_status(status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        let negotiated = libos_virtio::initialize(transport, features::INDIRECT_DESC).map_err(failed)?;
        if (negotiated & features::INDIRECT_DESC != 0) != self.indirect {
            return Err(failed(Errno::ENODEV));
        }
        let interrupt = self.requests.interrupt();
        if let Some(irq) = interrupt {
            transport.prepare_interrupt(irq).map_err(failed)?;
        }
        let mut hiprio = SplitQueue::new(transport, HIPRIO_QUEUE, HIPRIO_QUEUE_SIZE, false).map_err(failed)?;
        hiprio.set_interrupts(interrupt.is_some());
        self.requests.restart(transport).map_err(failed)?;
        // The old high-priority ring and the FORGETs in it are freed here, after the reset.
        let old = core::mem::replace(&mut *self.hiprio.lock(), Hiprio::new(hiprio, self.requests.epoch()));
        drop(old);
        libos_virtio::finish_initialization(transport);
        if let Some(irq) = interrupt {
            if let Err(e) = transport.enable_interrupt(irq) {
                log::error!("virtio-fs {:?}: interrupt {irq} not routed again ({e})", self.tag);
            }
        }
        let epoch = self.requests.resume();
        log::warn!("virtio-fs {:?}: device re-initialised after a failure (epoch {epoch})", self.tag);
        Ok(epoch)
    }

    fn max_transfer(&self) -> usize {
        // Worst case every page of every buffer is its own descriptor; keep a few descriptors
        // for the headers.
        let segments = self.requests.max_segments();
        (segments - 8) * PAGE as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::sync::atomic::AtomicU32;
    use libos_virtio::testing::{FakeTransport, Responder};

    fn platform() -> &'static libos_core::testing::FakePlatform {
        libos_core::testing::shared_platform()
    }

    /// A virtio-fs device with tag `myfs` answering with `respond`.
    fn device(respond: Responder, timeout: Duration) -> (Arc<VirtioFsDevice>, &'static FakeTransport) {
        platform();
        let mut config = tag(b"myfs").to_vec();
        config.extend_from_slice(&1u32.to_le_bytes());
        let transport: &'static FakeTransport =
            Box::leak(Box::new(FakeTransport::new(DEVICE_ID, features::INDIRECT_DESC, config, 1024, respond)));
        (VirtioFsDevice::new(Box::new(transport), None, Some(timeout)).unwrap(), transport)
    }

    /// Answers a request with a 16-byte header (len, error 0, the request's unique) followed by
    /// the request's bytes after its 40-byte header, reversed.
    fn echo() -> Responder {
        Box::new(|queue, input| {
            assert_eq!(queue, REQUEST_QUEUE, "requests go to the request queue");
            let mut reply = vec![0u8; 16];
            reply.extend(input[40..].iter().rev());
            let len = reply.len() as u32;
            reply[..4].copy_from_slice(&len.to_le_bytes());
            reply[8..16].copy_from_slice(&input[8..16]);
            Some(reply)
        })
    }

    fn header(opcode: u32, unique: u64) -> [u8; 40] {
        let mut h = [0u8; 40];
        h[4..8].copy_from_slice(&opcode.to_le_bytes());
        h[8..16].copy_from_slice(&unique.to_le_bytes());
        h
    }

    fn tag(text: &[u8]) -> [u8; TAG_LEN] {
        let mut raw = [0u8; TAG_LEN];
        raw[..text.len()].copy_from_slice(text);
        raw
    }

    #[test]
    fn tags_are_nul_padded_and_may_fill_all_36_bytes() {
        assert_eq!(parse_tag(&tag(b"myfs")).unwrap(), "myfs");
        let full = [b'a'; TAG_LEN];
        assert_eq!(parse_tag(&full).unwrap().len(), 36);
    }

    #[test]
    fn bad_tags_are_rejected() {
        assert_eq!(parse_tag(&tag(b"")), Err(Errno::EINVAL));
        assert_eq!(parse_tag(&tag(b"a\nb")), Err(Errno::EINVAL));
        assert_eq!(parse_tag(&tag(b"a\0b")), Err(Errno::EINVAL));
        assert_eq!(parse_tag(&tag(&[0xff, 0xfe])), Err(Errno::EINVAL));
    }

    #[test]
    fn a_request_round_trips_through_the_rings_into_the_callers_buffers() {
        let (device, transport) = device(echo(), DEFAULT_TIMEOUT);
        assert_eq!(device.tag(), "myfs");
        let payload: Vec<u8> = (0..3 * PAGE as usize + 7).map(|i| i as u8).collect();
        let mut out_header = [0u8; 16];
        let mut data = vec![0u8; payload.len() + 100];
        let written = device.request(&[&header(16, 7), &payload], &mut [&mut out_header, &mut data]).unwrap();
        assert_eq!(written, 16 + payload.len(), "the reply length comes from the used ring");
        assert_eq!(&out_header[8..16], &7u64.to_le_bytes());
        assert!(data[..payload.len()].iter().eq(payload.iter().rev()));
        assert_eq!(device.stats().requests, 1);
        assert_eq!(device.stats().notifications, transport.notifications.load(Ordering::Relaxed).into());
        assert!(device.max_transfer() >= (1 << 20) + 4096, "1 MiB payloads fit: {}", device.max_transfer());
    }

    #[test]
    fn many_requests_reuse_the_ring() {
        let (device, _) = device(echo(), DEFAULT_TIMEOUT);
        for unique in 0..3000u64 {
            let body = unique.to_le_bytes();
            let mut reply = [0u8; 24];
            assert_eq!(device.request(&[&header(1, unique), &body], &mut [&mut reply]), Ok(24));
            assert_eq!(&reply[8..16], &unique.to_le_bytes());
        }
    }

    #[test]
    fn forgets_go_to_the_high_priority_queue_without_a_reply() {
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        let (device, _) = device(
            Box::new(move |queue, input| {
                assert_eq!((queue, input.len()), (HIPRIO_QUEUE, 48));
                counter.fetch_add(1, Ordering::Relaxed);
                Some(Vec::new())
            }),
            DEFAULT_TIMEOUT,
        );
        for _ in 0..200 {
            device.send_forget(&[0u8; 48]).unwrap();
        }
        assert_eq!(seen.load(Ordering::Relaxed), 200);
        assert_eq!(device.stats().forgets, 200);
    }

    #[test]
    fn a_reply_that_never_comes_fails_the_device_with_eio() {
        let (device, transport) = device(Box::new(|_, _| None), Duration::from_millis(50));
        // The fake clock only moves when told to: move it past the timeout meanwhile.
        let clock = std::thread::spawn(|| {
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(2));
                platform().advance(10_000_000);
            }
        });
        let mut reply = [0u8; 16];
        assert_eq!(device.request(&[&header(15, 1)], &mut [&mut reply]), Err(Errno::EIO));
        clock.join().unwrap();
        assert!(device.has_failed());
        assert_eq!(transport.status(), 0, "the device was reset, so it drops the buffers it held");
        assert_eq!(device.request(&[&header(15, 2)], &mut [&mut reply]), Err(Errno::EIO), "every later caller too");
        assert_eq!(device.send_forget(&[0u8; 48]), Err(Errno::EIO));
    }

    #[test]
    fn oversized_requests_are_refused_before_the_device_sees_them() {
        let (device, transport) = device(echo(), DEFAULT_TIMEOUT);
        let big = vec![0u8; device.max_transfer()];
        let mut reply = [0u8; 16];
        assert_eq!(device.request(&[&header(16, 1), &big], &mut [&mut reply]), Err(Errno::E2BIG));
        assert_eq!(transport.requests.load(Ordering::Relaxed), 0);
    }
}
