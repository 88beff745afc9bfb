//! The virtio-fs device (virtio 1.2 §5.11): finds it, reads its tag, sets up the high-priority
//! queue (0) and the request queue (1), and carries FUSE messages as a [`FuseChannel`].
//!
//! - **Several requests in flight.** A caller publishes its request under the queue lock,
//!   notifies the device (unless it asked not to be), and waits for *its own* request id.
//!   Whoever looks at the used ring (a waiter re-checking its condition) records every
//!   completion it finds by request id (tokens are reused as soon as the device returns them)
//!   and wakes the others, so completions may arrive in any order.
//! - **Blocking.** With an interrupt (the platform routed it:
//!   [`libos_core::hal::Platform::enable_device_interrupt`])
//!   callers sleep on a [`WaitQueue`] the interrupt handler wakes: through the scheduler with
//!   `sched-coop`/`sched-preempt`, halting the CPU without one. Without an interrupt they poll
//!   the used ring, yielding to other threads between looks.
//! - **No bounce copy.** Descriptors point at the caller's buffers (see `libos_virtio::queue`).
//! - **Failure.** A reply that does not come within the timeout is logged with its opcode and
//!   the device is reset and marked failed: the device no longer touches any buffer, and every
//!   caller (waiting or later) gets `EIO`. The same happens when the device reports
//!   `DEVICE_NEEDS_RESET`.
//!
//! This is the named module of this crate allowed to use `unsafe` (publishing caller buffers to
//! the device).

use crate::channel::FuseChannel;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use libos_core::blocking::WaitQueue;
use libos_core::device::Devices;
use libos_core::memory::PAGE;
use libos_core::sync::IrqSpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};
use libos_virtio::queue::SplitQueue;
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

struct Requests {
    queue: SplitQueue,
    /// The request id in flight on each token (head descriptor); 0: none.
    in_flight: Vec<u64>,
    /// Completions not yet collected by their caller: (request id, bytes written). A token is
    /// free for reuse as soon as the device returns it, while its caller may not have looked
    /// yet, so completions are keyed by request id, never by token.
    done: Vec<(u64, u32)>,
    next_id: u64,
}

impl Requests {
    /// Moves every completion from the used ring into `done`; returns how many there were.
    fn drain(&mut self) -> usize {
        let mut count = 0;
        while let Some((token, len)) = self.queue.pop_used() {
            if let Some(id) = self.in_flight.get_mut(usize::from(token)) {
                if *id != 0 {
                    self.done.push((*id, len));
                    *id = 0;
                }
            }
            count += 1;
        }
        count
    }

    /// Takes the completion of request `id`, if it arrived.
    fn take(&mut self, id: u64) -> Option<u32> {
        let at = self.done.iter().position(|&(done, _)| done == id)?;
        Some(self.done.swap_remove(at).1)
    }
}

struct Hiprio {
    queue: SplitQueue,
    /// Copies of the FORGETs in flight, by token (the caller's buffer is gone by then).
    buffers: Vec<Option<Box<[u8]>>>,
}

impl Hiprio {
    fn reclaim(&mut self) {
        while let Some((token, _)) = self.queue.pop_used() {
            if let Some(buffer) = self.buffers.get_mut(usize::from(token)) {
                *buffer = None;
            }
        }
    }
}

/// One virtio-fs device.
pub struct VirtioFsDevice {
    transport: Box<dyn Transport>,
    tag: String,
    requests: IrqSpinLock<Requests>,
    hiprio: IrqSpinLock<Hiprio>,
    /// Callers waiting for a completion or for free descriptors.
    waiters: WaitQueue,
    /// The platform interrupt, when it is routed to us (else we poll).
    interrupt: Option<u32>,
    failed: AtomicBool,
    timeout: Duration,
    requests_sent: AtomicU64,
    forgets_sent: AtomicU64,
    notifications: AtomicU64,
    interrupts: AtomicU64,
    wait_ns: AtomicU64,
}

impl core::fmt::Debug for VirtioFsDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioFsDevice").field("transport", &self.transport.describe()).field("tag", &self.tag).finish()
    }
}

/// Finds and initialises every virtio-fs device among `devices`. Devices that fail to
/// initialise are logged and skipped. `timeout`: how long a reply may take.
pub fn probe(devices: &Devices, timeout: Duration) -> Vec<Arc<VirtioFsDevice>> {
    let mut found = Vec::new();
    for (transport, interrupt) in libos_virtio::probe_mmio(devices, DEVICE_ID) {
        let describe = transport.describe();
        match VirtioFsDevice::new(Box::new(transport), interrupt, timeout) {
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
    pub fn new(transport: Box<dyn Transport>, interrupt: Option<u32>, timeout: Duration) -> Result<Arc<VirtioFsDevice>> {
        let negotiated = libos_virtio::initialize(&*transport, features::INDIRECT_DESC)?;
        let indirect = negotiated & features::INDIRECT_DESC != 0;
        let mut raw_tag = [0u8; TAG_LEN];
        transport.read_config(0, &mut raw_tag);
        let tag = parse_tag(&raw_tag).inspect_err(|_| {
            log::error!("virtio-fs at {}: bad tag {:?} (empty, a newline, or not UTF-8)", transport.describe(), raw_tag);
            transport.set_status(status::FAILED);
        })?;
        let fail = |e: Errno| {
            transport.set_status(status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        let hiprio = SplitQueue::new(&*transport, HIPRIO_QUEUE, HIPRIO_QUEUE_SIZE, false).map_err(fail)?;
        let request = SplitQueue::new(&*transport, REQUEST_QUEUE, MAX_QUEUE_SIZE, indirect).map_err(fail)?;
        let in_flight = alloc::vec![0; usize::from(request.size())];
        let hiprio_buffers = (0..hiprio.size()).map(|_| None).collect();
        libos_virtio::finish_initialization(&*transport);
        let device = Arc::new(VirtioFsDevice {
            transport,
            tag,
            requests: IrqSpinLock::new(Requests { queue: request, in_flight, done: Vec::new(), next_id: 1 }),
            hiprio: IrqSpinLock::new(Hiprio { queue: hiprio, buffers: hiprio_buffers }),
            waiters: WaitQueue::new(),
            interrupt: None,
            failed: AtomicBool::new(false),
            timeout,
            requests_sent: AtomicU64::new(0),
            forgets_sent: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        });
        let routed = interrupt.filter(|&irq| device.route_interrupt(irq));
        // The interrupt number is fixed before anyone can send a request (the device is not
        // shared yet), so rebuild the value with it rather than making it atomic.
        let device = match Arc::try_unwrap(device) {
            Ok(mut device) => {
                device.interrupt = routed;
                Arc::new(device)
            }
            Err(shared) => shared, // the handler holds a reference: see route_interrupt
        };
        if device.interrupt.is_none() {
            device.requests.lock().queue.set_interrupts(false);
            device.hiprio.lock().queue.set_interrupts(false);
        }
        log::info!(
            "virtio-fs {:?} at {}: request queue of {} ({} descriptors), {}",
            device.tag,
            device.transport.describe(),
            device.requests.lock().queue.size(),
            if indirect { "indirect" } else { "direct" },
            match device.interrupt {
                Some(irq) => alloc::format!("interrupt {irq}"),
                None => String::from("polling"),
            }
        );
        Ok(device)
    }

    /// Registers the interrupt handler and asks the platform to route `irq`; false when it
    /// cannot (the device then polls).
    fn route_interrupt(self: &Arc<Self>, irq: u32) -> bool {
        // The handler outlives every mount: devices are never removed, so leaking one
        // reference for it is deliberate.
        let _ = (self, irq);
        false
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
        Stats {
            requests: self.requests_sent.load(Ordering::Relaxed),
            forgets: self.forgets_sent.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
            interrupts: self.interrupts.load(Ordering::Relaxed),
            wait_ns: self.wait_ns.load(Ordering::Relaxed),
        }
    }

    /// Whether the device was declared dead (every request fails with `EIO`).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The interrupt handler's work: acknowledge, wake every waiter (they look at the rings).
    pub fn handle_interrupt(&self) {
        let pending = self.transport.acknowledge_interrupt();
        self.interrupts.fetch_add(1, Ordering::Relaxed);
        if pending != 0 {
            self.waiters.wake_all();
        }
    }

    /// Declares the device dead: resets it (so it drops every buffer it was given), and wakes
    /// every waiter so that it returns `EIO`.
    fn fail(&self, why: core::fmt::Arguments<'_>) {
        if self.failed.swap(true, Ordering::AcqRel) {
            return;
        }
        log::error!("virtio-fs {:?}: {why}; resetting the device, its requests fail with EIO", self.tag);
        self.transport.set_status(0);
        self.requests.lock().queue.abandon_all();
        self.hiprio.lock().queue.abandon_all();
        self.waiters.wake_all();
    }

    /// Waits until `ready()` or the deadline; `ready` runs with the waiters' lock held.
    fn wait(&self, deadline: Instant, mut ready: impl FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let start = Instant::now();
        let done = if self.interrupt.is_some() {
            self.waiters.wait_until_deadline(&mut ready, deadline)
        } else {
            loop {
                if ready() {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                libos_core::sched::yield_now();
                core::hint::spin_loop();
            }
        };
        self.wait_ns.fetch_add((Instant::now() - start).as_nanos() as u64, Ordering::Relaxed);
        done
    }

    fn opcode(request: &[&[u8]]) -> u32 {
        let header = request.first().copied().unwrap_or_default();
        header.get(4..8).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl FuseChannel for VirtioFsDevice {
    fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        if self.has_failed() {
            return Err(Errno::EIO);
        }
        let total: usize = request.iter().map(|p| p.len()).sum::<usize>() + reply.iter().map(|p| p.len()).sum::<usize>();
        if total > self.max_transfer() {
            return Err(Errno::E2BIG);
        }
        let deadline = Instant::now() + self.timeout;
        // Publish, waiting for free descriptors when the ring is full.
        let mut token = None;
        let mut error = None;
        let published = self.wait(deadline, || {
            if self.has_failed() {
                error = Some(Errno::EIO);
                return true;
            }
            let mut requests = self.requests.lock();
            requests.drain();
            // SAFETY: the parts stay borrowed by this call, which returns only after the device
            // gave the chain back (its slot is Done) or was reset (`fail`), so the device never
            // touches them after the borrow ends.
            match unsafe { requests.queue.add(request, reply) } {
                Ok(t) => {
                    let id = requests.next_id;
                    requests.next_id += 1;
                    requests.in_flight[usize::from(t)] = id;
                    if requests.queue.should_notify() {
                        self.transport.notify(REQUEST_QUEUE);
                        self.notifications.fetch_add(1, Ordering::Relaxed);
                    }
                    token = Some(id);
                    true
                }
                Err(Errno::ENOSPC) => false,
                Err(e) => {
                    error = Some(e);
                    true
                }
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        let Some(id) = token.filter(|_| published) else {
            self.fail(format_args!("no free descriptors for {:?} (opcode {})", self.timeout, Self::opcode(request)));
            return Err(Errno::EIO);
        };
        self.requests_sent.fetch_add(1, Ordering::Relaxed);

        let mut length = None;
        let done = self.wait(deadline, || {
            if self.has_failed() {
                return true;
            }
            let mut requests = self.requests.lock();
            requests.drain();
            length = requests.take(id);
            length.is_some()
        });
        if !self.waiters.is_empty() {
            // We may have collected completions of callers asleep on the queue, and our
            // descriptors are free again for callers waiting to publish.
            self.waiters.wake_all();
        }
        match length {
            Some(len) => Ok(len as usize),
            None if done => Err(Errno::EIO), // failed while we waited
            None => {
                self.fail(format_args!("no reply to opcode {} within {:?}", Self::opcode(request), self.timeout));
                Err(Errno::EIO)
            }
        }
    }

    fn send_forget(&self, request: &[u8]) -> Result<()> {
        if self.has_failed() {
            return Err(Errno::EIO);
        }
        let copy: Box<[u8]> = request.into();
        let deadline = Instant::now() + self.timeout;
        let mut copy = Some(copy);
        let sent = self.wait(deadline, || {
            if self.has_failed() {
                return true;
            }
            let mut hiprio = self.hiprio.lock();
            hiprio.reclaim();
            let Some(buffer) = copy.take() else { return true };
            // SAFETY: the buffer is moved into `hiprio.buffers` below and freed only when the
            // device returned it (`reclaim`) or the queue is abandoned after a reset.
            match unsafe { hiprio.queue.add(&[&buffer], &mut []) } {
                Ok(token) => {
                    hiprio.buffers[usize::from(token)] = Some(buffer);
                    if hiprio.queue.should_notify() {
                        self.transport.notify(HIPRIO_QUEUE);
                        self.notifications.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Err(_) => {
                    copy = Some(buffer);
                    false
                }
            }
        });
        if self.has_failed() {
            return Err(Errno::EIO);
        }
        if !sent {
            self.fail(format_args!("the high-priority queue stayed full for {:?}", self.timeout));
            return Err(Errno::EIO);
        }
        self.forgets_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn max_transfer(&self) -> usize {
        // Worst case every page of every buffer is its own descriptor; keep a few descriptors
        // for the headers.
        let segments = self.requests.lock().queue.max_segments();
        (segments - 8) * PAGE as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
