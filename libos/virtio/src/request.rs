//! [`RequestQueue`]: a virtqueue carrying requests that each wait for their own reply, with
//! several in flight at once, the way block and file-system devices are driven.
//!
//! - **Several requests in flight.** A caller publishes its request under the queue lock,
//!   notifies the device (unless the device asked not to be), and waits for *its own* request
//!   id. Whoever looks at the used ring (a waiter re-checking its condition) records every
//!   completion it finds by request id (tokens are reused as soon as the device returns them)
//!   and wakes the others, so completions may arrive in any order.
//! - **Blocking.** With an interrupt routed ([`RequestQueue::use_interrupt`]) callers sleep on a
//!   [`WaitQueue`] that [`RequestQueue::handle_interrupt`] wakes: through the scheduler where
//!   there is one, halting the CPU without. Without an interrupt they poll the used ring,
//!   yielding to other threads between looks.
//! - **No bounce copy.** Descriptors point at the caller's buffers (see [`crate::queue`]).
//! - **Failure.** A reply that does not come within the timeout (if there is one) fails the
//!   device ([`RequestQueue::fail`]): it is reset, and only once the reset is confirmed (the
//!   device no longer touches any buffer it was given) are the waiting callers released with
//!   `EIO`, as is every later caller until the driver brings the device back
//!   ([`RequestQueue::restart`] after its own re-initialisation, then
//!   [`RequestQueue::resume`]). Each failure starts a new **epoch**: a caller that published
//!   in an earlier epoch is released (its request is gone with the reset) and never mistakes a
//!   later epoch's ring for its own, and a driver can tie a request to the epoch its state
//!   belongs to ([`RequestQueue::request_in`]), so that nothing from before a reset reaches
//!   the device after it.
//! - **A device that writes nonsense** into the used ring (an id not in flight, a length
//!   beyond the buffers) is treated like one that stopped answering: failed and reset, its
//!   callers get `EIO` (see [`crate::queue::SplitQueue::pop_used`]).

use crate::Transport;
use crate::queue::{SplitQueue, UsedFault};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use libos_core::blocking::WaitQueue;
use libos_core::sync::IrqSpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};

/// `RequestQueue::interrupt` while the queue polls.
const NO_INTERRUPT: u32 = u32::MAX;

/// Counters for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests published.
    pub requests: u64,
    /// Notifications written to the device.
    pub notifications: u64,
    /// Device interrupts handled.
    pub interrupts: u64,
    /// Nanoseconds callers spent waiting for the device (after their first look found the
    /// reply not there): under `-icount` the polling or idle time to subtract from a workload's
    /// guest time to get the guest's own work.
    pub wait_ns: u64,
}

struct InFlight {
    queue: SplitQueue,
    /// The first bad used entry seen, until the device is failed for it.
    fault: Option<UsedFault>,
    /// The request id in flight on each token (head descriptor); 0: none.
    ids: Vec<u64>,
    /// Completions not yet collected by their caller: (request id, bytes written). A token is
    /// free for reuse as soon as the device returns it, while its caller may not have looked
    /// yet, so completions are keyed by request id, never by token.
    done: Vec<(u64, u32)>,
    next_id: u64,
}

impl InFlight {
    /// Moves every completion from the used ring into `done`. A chain the device returned
    /// with a bad entry is not completed (its caller is released by the failure that follows,
    /// see [`RequestQueue::check_fault`]).
    fn drain(&mut self) {
        while let Some((token, len)) = self.queue.pop_used() {
            let fault = self.queue.take_fault();
            let id = self.ids.get_mut(usize::from(token)).map_or(0, core::mem::take);
            if let Some(fault) = fault {
                self.fault.get_or_insert(fault);
            }
            if id != 0 && !matches!(fault, Some(UsedFault::TooLong { token: bad, .. }) if bad == token) {
                self.done.push((id, len));
            }
        }
        if let Some(fault) = self.queue.take_fault() {
            self.fault.get_or_insert(fault);
        }
    }

    /// Takes the completion of request `id`, if it arrived.
    fn take(&mut self, id: u64) -> Option<u32> {
        let at = self.done.iter().position(|&(done, _)| done == id)?;
        Some(self.done.swap_remove(at).1)
    }
}

/// One virtqueue of request/reply pairs.
pub struct RequestQueue {
    index: u16,
    ring: IrqSpinLock<InFlight>,
    /// What [`RequestQueue::restart`] needs to build the ring again.
    max_size: u16,
    indirect: bool,
    /// Bumped by every failure (under the ring lock): requests of an earlier epoch are gone.
    epoch: AtomicU64,
    /// Callers waiting for a completion or for free descriptors.
    waiters: WaitQueue,
    /// The platform interrupt when one is routed, else [`NO_INTERRUPT`] (callers poll).
    interrupt: AtomicU32,
    failed: AtomicBool,
    /// How long a reply may take; `None`: forever.
    timeout: Option<Duration>,
    requests: AtomicU64,
    notifications: AtomicU64,
    interrupts: AtomicU64,
    wait_ns: AtomicU64,
}

impl RequestQueue {
    /// Sets up queue `index` of `transport` with up to `max_size` entries (indirect descriptors
    /// when negotiated), polling until [`RequestQueue::use_interrupt`]. `timeout`: how long a
    /// reply may take before the device is declared dead; `None` waits forever, which
    /// deterministic benchmarks need (under QEMU's `-icount sleep=off` the clock of a halted
    /// guest jumps to its next deadline at once).
    ///
    /// Errors: `ENOENT` when the queue does not exist, `ENOMEM`.
    pub fn new(transport: &dyn Transport, index: u16, max_size: u16, indirect: bool, timeout: Option<Duration>) -> Result<RequestQueue> {
        let mut queue = SplitQueue::new(transport, index, max_size, indirect)?;
        queue.set_interrupts(false);
        let ids = alloc::vec![0; usize::from(queue.size())];
        Ok(RequestQueue {
            index,
            ring: IrqSpinLock::new(InFlight { queue, fault: None, ids, done: Vec::new(), next_id: 1 }),
            max_size,
            indirect,
            epoch: AtomicU64::new(0),
            waiters: WaitQueue::new(),
            interrupt: AtomicU32::new(NO_INTERRUPT),
            failed: AtomicBool::new(false),
            timeout,
            requests: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        })
    }

    /// From now on the device completes requests with interrupt `irq`, whose handler calls
    /// [`RequestQueue::handle_interrupt`]: callers sleep instead of polling.
    pub fn use_interrupt(&self, irq: u32) {
        self.ring.lock().queue.set_interrupts(true);
        self.interrupt.store(irq, Ordering::Release);
    }

    /// The interrupt requests complete with, or `None` when callers poll.
    pub fn interrupt(&self) -> Option<u32> {
        Some(self.interrupt.load(Ordering::Acquire)).filter(|&irq| irq != NO_INTERRUPT)
    }

    /// The queue's size in entries.
    pub fn size(&self) -> u16 {
        self.ring.lock().queue.size()
    }

    /// The most buffer segments (page-contiguous pieces) one request may have.
    pub fn max_segments(&self) -> usize {
        self.ring.lock().queue.max_segments()
    }

    /// Counters since creation.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            requests: self.requests.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
            interrupts: self.interrupts.load(Ordering::Relaxed),
            wait_ns: self.wait_ns.load(Ordering::Relaxed),
        }
    }

    /// Whether the device was declared dead (every request fails with `EIO` until
    /// [`RequestQueue::resume`]).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The current epoch: how many times the device failed so far.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Builds a fresh ring on the device after a failure (the old one died with the reset):
    /// call it while re-initialising the device, between feature negotiation and `DRIVER_OK`.
    /// The queue stays failed until [`RequestQueue::resume`]. Errors: `EBUSY` when the
    /// queue has not failed (its ring may be in use), then those of [`SplitQueue::new`].
    pub fn restart(&self, transport: &dyn Transport) -> Result<()> {
        let mut ring = self.ring.lock();
        if !self.has_failed() {
            return Err(Errno::EBUSY);
        }
        let mut queue = SplitQueue::new(transport, self.index, self.max_size, self.indirect)?;
        queue.set_interrupts(self.interrupt().is_some());
        ring.ids = alloc::vec![0; usize::from(queue.size())];
        // The old ring's memory is freed here: `fail` confirmed the reset, so the device no
        // longer reads or writes it.
        ring.queue = queue;
        ring.fault = None;
        ring.done.clear();
        Ok(())
    }

    /// Lets requests through again once the driver finished re-initialising the device (after
    /// [`RequestQueue::restart`] and `DRIVER_OK`). Returns the epoch requests now run in.
    pub fn resume(&self) -> u64 {
        let _ring = self.ring.lock();
        self.failed.store(false, Ordering::Release);
        self.epoch()
    }

    /// Fails the device if the used ring held a bad entry (the device is not to be trusted
    /// with buffers any more). Returns whether it did.
    fn check_fault(&self, transport: &dyn Transport, epoch: u64) -> bool {
        let fault = self.ring.lock().fault.take();
        match fault {
            Some(fault) => {
                self.fail_epoch(transport, epoch, format_args!("bad used entry on queue {}: {fault:?}", self.index));
                true
            }
            None => false,
        }
    }

    /// The interrupt handler's work once the device's interrupt status was acknowledged: wake
    /// every waiter (they look at the ring themselves).
    pub fn handle_interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::Relaxed);
        self.waiters.wake_all();
    }

    /// Sends `readable` then `writable` parts as one request and waits for its reply; returns
    /// the bytes the device wrote.
    ///
    /// Errors: `ETIMEDOUT` when this request got no reply (or no room in the ring) within the
    /// timeout: the device has then been reset and failed, and the driver, which knows what the
    /// request was, reports it and returns `EIO`; `EIO` when the device failed earlier or while
    /// the request waited; `E2BIG` when the request can never fit the queue.
    pub fn request(&self, transport: &dyn Transport, readable: &[&[u8]], writable: &mut [&mut [u8]]) -> Result<u32> {
        self.request_in(transport, None, readable, writable)
    }

    /// [`RequestQueue::request`], published only if the queue is still in epoch `epoch` (when
    /// given): a request that names device state of an earlier epoch (a FUSE node id of the
    /// session before a reset) fails with `ESTALE` instead of reaching the new one. The check
    /// is made under the ring lock, where the request is published, so no failure and restart
    /// can slip in between.
    pub fn request_in(&self, transport: &dyn Transport, epoch: Option<u64>, readable: &[&[u8]], writable: &mut [&mut [u8]]) -> Result<u32> {
        if self.has_failed() {
            return Err(Errno::EIO);
        }
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        // Publish, waiting for free descriptors while the ring is full.
        let mut published = None;
        let mut error = None;
        let mut my_epoch = self.epoch();
        let in_time = self.wait(deadline, || {
            let mut ring = self.ring.lock();
            if self.has_failed() || ring.fault.is_some() {
                error = Some(Errno::EIO);
                return true;
            }
            my_epoch = self.epoch();
            if epoch.is_some_and(|epoch| epoch != my_epoch) {
                error = Some(Errno::ESTALE);
                return true;
            }
            ring.drain();
            // SAFETY: the parts stay borrowed by this call, which returns only after the device
            // gave the chain back (its id is collected below) or after `fail` confirmed the
            // device reset, so the device never touches them once the borrow ends.
            match unsafe { ring.queue.add(readable, writable) } {
                Ok(token) => {
                    let id = ring.next_id;
                    ring.next_id += 1;
                    ring.ids[usize::from(token)] = id;
                    if ring.queue.should_notify() {
                        transport.notify(self.index);
                        self.notifications.fetch_add(1, Ordering::Relaxed);
                    }
                    published = Some(id);
                    true
                }
                Err(Errno::ENOSPC) => false,
                Err(e) => {
                    error = Some(e);
                    true
                }
            }
        });
        if self.check_fault(transport, my_epoch) {
            return Err(Errno::EIO);
        }
        if let Some(e) = error {
            return Err(e);
        }
        let Some(id) = published.filter(|_| in_time) else {
            let waited = self.timeout.unwrap_or_default();
            self.fail_epoch(transport, my_epoch, format_args!("queue {} stayed full for {waited:?}", self.index));
            return Err(Errno::ETIMEDOUT);
        };
        self.requests.fetch_add(1, Ordering::Relaxed);

        let mut length = None;
        let answered = self.wait(deadline, || {
            let mut ring = self.ring.lock();
            // A failure (even one the driver already recovered from: a later epoch) took the
            // request with it.
            if self.has_failed() || self.epoch() != my_epoch {
                return true;
            }
            ring.drain();
            length = ring.take(id);
            length.is_some() || ring.fault.is_some()
        });
        if self.check_fault(transport, my_epoch) {
            return Err(Errno::EIO);
        }
        if !self.waiters.is_empty() {
            // We may have collected completions of callers asleep on the queue, and our
            // descriptors are free again for callers waiting to publish.
            self.waiters.wake_all();
        }
        match length {
            Some(len) => Ok(len),
            None if answered => Err(Errno::EIO), // failed while we waited
            None => {
                let waited = self.timeout.unwrap_or_default();
                self.fail_epoch(transport, my_epoch, format_args!("no reply on queue {} within {waited:?}", self.index));
                Err(Errno::ETIMEDOUT)
            }
        }
    }

    /// Declares the device dead: resets it, waits until the reset shows in the status (so the
    /// device no longer touches any buffer it was given), forgets the requests in flight, and
    /// only then releases every waiter with `EIO`. Other queues of the same device must be
    /// abandoned by the driver as well (the reset stopped them too).
    pub fn fail(&self, transport: &dyn Transport, why: core::fmt::Arguments<'_>) {
        self.fail_epoch(transport, self.epoch(), why);
    }

    /// [`RequestQueue::fail`] on behalf of a request of epoch `epoch`: nothing to do if the
    /// device already failed since (and perhaps came back: a stale timeout must not fail the
    /// re-initialised device).
    pub fn fail_epoch(&self, transport: &dyn Transport, epoch: u64, why: core::fmt::Arguments<'_>) {
        let mut ring = self.ring.lock();
        if self.has_failed() || self.epoch() != epoch {
            return;
        }
        log::error!("{}: {why}; resetting the device, its requests fail with EIO", transport.describe());
        if !crate::reset(transport) {
            // The callers are released anyway (keeping them waiting would hang them for
            // ever); a device that ignores a reset is broken beyond what a driver can contain.
            log::error!("{}: the device did not confirm its reset", transport.describe());
        }
        ring.queue.abandon_all();
        ring.done.clear();
        ring.fault = None;
        ring.ids.iter_mut().for_each(|id| *id = 0);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.failed.store(true, Ordering::Release);
        drop(ring);
        self.waiters.wake_all();
    }

    /// Waits until `ready()` (which runs with the waiters' lock held) or the deadline; returns
    /// whether `ready()` held.
    pub fn wait(&self, deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let start = Instant::now();
        let done = if self.interrupt().is_some() {
            match deadline {
                Some(deadline) => self.waiters.wait_until_deadline(&mut ready, deadline),
                None => {
                    self.waiters.wait_until(&mut ready);
                    true
                }
            }
        } else {
            loop {
                if ready() {
                    break true;
                }
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break false;
                }
                libos_core::sched::yield_now();
                core::hint::spin_loop();
            }
        };
        self.wait_ns.fetch_add((Instant::now() - start).as_nanos() as u64, Ordering::Relaxed);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeTransport;
    use crate::{QueueAddresses, Transport};
    use alloc::boxed::Box;
    use alloc::string::String;
    use libos_core::hal::MemoryRegion;
    use std::sync::{Arc, Mutex};

    /// A device that never answers and takes a few status reads to show a reset, logging what
    /// happens in order.
    struct SlowReset {
        inner: &'static FakeTransport,
        reads_until_reset_shows: Mutex<u32>,
        log: Arc<Mutex<Vec<&'static str>>>,
        /// Claim this many bytes written in every used entry (a lying device).
        claimed_len: Option<u32>,
    }

    impl Transport for SlowReset {
        fn describe(&self) -> String {
            String::from("slow-reset fake")
        }
        fn device_id(&self) -> u32 {
            self.inner.device_id()
        }
        fn is_modern(&self) -> bool {
            true
        }
        fn device_features(&self) -> u64 {
            self.inner.device_features()
        }
        fn set_driver_features(&self, features: u64) {
            self.inner.set_driver_features(features);
        }
        fn status(&self) -> u8 {
            let mut left = self.reads_until_reset_shows.lock().unwrap();
            if self.inner.status() == 0 && *left > 0 {
                *left -= 1;
                self.log.lock().unwrap().push("reset not shown yet");
                return crate::status::DRIVER_OK;
            }
            if self.inner.status() == 0 {
                self.log.lock().unwrap().push("reset shown");
            }
            self.inner.status()
        }
        fn set_status(&self, status: u8) {
            self.inner.set_status(status);
        }
        fn max_queue_size(&self, queue: u16) -> u16 {
            self.inner.max_queue_size(queue)
        }
        fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
            self.inner.setup_queue(queue, size, addresses)
        }
        fn notify(&self, queue: u16) {
            self.inner.notify(queue);
            if let (Some(len), Some((size, addresses))) = (self.claimed_len, self.inner.queue(queue)) {
                let used = addresses.used as usize;
                // SAFETY: host test: `used.idx` of the live queue's used ring (physical =
                // virtual); the fake device has just finished with it.
                let index = unsafe { ((used + 2) as *const u16).read_volatile() }.wrapping_sub(1);
                let element = used + 4 + 8 * usize::from(index % size);
                // SAFETY: as above: the `len` word of the entry just written (before `used.idx`).
                unsafe { ((element + 4) as *mut u32).write_volatile(len) }
            }
        }
        fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
            self.inner.read_config(offset, buf)
        }
        fn acknowledge_interrupt(&self) -> u32 {
            self.inner.acknowledge_interrupt()
        }
        fn shared_memory(&self, id: u8) -> Option<MemoryRegion> {
            self.inner.shared_memory(id)
        }
    }

    #[test]
    fn a_timeout_releases_every_caller_only_after_the_reset_shows() {
        let platform = libos_core::testing::shared_platform();
        let log = Arc::new(Mutex::new(Vec::new()));
        let inner: &'static FakeTransport = Box::leak(Box::new(FakeTransport::new(2, 0, Vec::new(), 16, Box::new(|_, _| None))));
        let transport: &'static SlowReset = Box::leak(Box::new(SlowReset { inner, reads_until_reset_shows: Mutex::new(3), log: log.clone(), claimed_len: None }));
        transport.set_status(crate::status::DRIVER_OK);
        let queue: &'static RequestQueue = Box::leak(Box::new(RequestQueue::new(transport, 0, 16, false, Some(Duration::from_millis(50))).unwrap()));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reply = [0u8; 4];
                    let result = queue.request(transport, &[b"request"], &mut [&mut reply]);
                    log.lock().unwrap().push("caller released");
                    result
                })
            })
            .collect();
        // The fake clock moves only when told: move it past the timeout meanwhile.
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(2));
            platform.advance(10_000_000);
        }
        let results: Vec<Result<u32>> = callers.into_iter().map(|caller| caller.join().unwrap()).collect();
        assert!(results.contains(&Err(Errno::ETIMEDOUT)), "the request that timed out says so: {results:?}");
        assert!(results.iter().all(|r| matches!(r, Err(Errno::ETIMEDOUT | Errno::EIO))), "{results:?}");
        assert!(queue.has_failed());
        let log = log.lock().unwrap();
        let shown = log.iter().position(|&e| e == "reset shown").expect("the reset was confirmed");
        let first_release = log.iter().position(|&e| e == "caller released").unwrap();
        assert!(shown < first_release, "a caller was released before the device confirmed its reset: {log:?}");
        assert_eq!(log.iter().filter(|&&e| e == "reset not shown yet").count(), 3);
        drop(log);
        let mut reply = [0u8; 4];
        assert_eq!(queue.request(transport, &[b"later"], &mut [&mut reply]), Err(Errno::EIO), "later callers fail at once");
    }

    /// A fake device answering "hang" never and anything else with "ok", and a queue on it.
    fn hanging_on_request(claimed_len: Option<u32>) -> (&'static SlowReset, RequestQueue) {
        libos_core::testing::shared_platform();
        let inner: &'static FakeTransport = Box::leak(Box::new(FakeTransport::new(
            2,
            0,
            Vec::new(),
            16,
            Box::new(|_, input| (input != b"hang").then(|| b"ok".to_vec())),
        )));
        let log = Arc::new(Mutex::new(Vec::new()));
        let transport: &'static SlowReset = Box::leak(Box::new(SlowReset { inner, reads_until_reset_shows: Mutex::new(0), log, claimed_len }));
        transport.set_status(crate::status::DRIVER_OK);
        let queue = RequestQueue::new(transport, 0, 16, false, Some(Duration::from_millis(50))).unwrap();
        (transport, queue)
    }

    /// Runs `f` while the fake clock moves past any timeout.
    fn with_time_passing<R>(f: impl FnOnce() -> R) -> R {
        let platform = libos_core::testing::shared_platform();
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = stop.clone();
        let clock = std::thread::spawn(move || {
            while !ticking.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                platform.advance(10_000_000);
            }
        });
        let result = f();
        stop.store(true, Ordering::Relaxed);
        clock.join().unwrap();
        result
    }

    #[test]
    fn a_failed_queue_restarts_and_refuses_requests_of_the_old_epoch() {
        let (transport, queue) = hanging_on_request(None);
        let before = queue.epoch();
        let mut reply = [0u8; 2];
        assert_eq!(queue.request(transport, &[b"first"], &mut [&mut reply]), Ok(2));
        assert_eq!(with_time_passing(|| queue.request(transport, &[b"hang"], &mut [&mut reply])), Err(Errno::ETIMEDOUT));
        assert!(queue.has_failed());
        assert_eq!(queue.restart(transport), Ok(()), "the driver re-initialises the device");
        assert_eq!(queue.request(transport, &[b"early"], &mut [&mut reply]), Err(Errno::EIO), "not before resume");
        transport.set_status(crate::status::DRIVER_OK);
        let now = queue.resume();
        assert_ne!(now, before);
        reply = [0; 2];
        assert_eq!(queue.request(transport, &[b"again"], &mut [&mut reply]), Ok(2), "the queue works after the restart");
        assert_eq!(&reply, b"ok");
        assert_eq!(queue.request_in(transport, Some(now), &[b"current"], &mut [&mut reply]), Ok(2));
        let seen = transport.inner.requests.load(Ordering::Relaxed);
        assert_eq!(queue.request_in(transport, Some(before), &[b"stale"], &mut [&mut reply]), Err(Errno::ESTALE));
        assert_eq!(transport.inner.requests.load(Ordering::Relaxed), seen, "a stale request never reaches the device");
        assert_eq!(queue.restart(transport), Err(Errno::EBUSY), "a working ring is not replaced");
    }

    #[test]
    fn a_used_length_beyond_the_reply_buffers_fails_the_request_and_the_device() {
        let (transport, queue) = hanging_on_request(Some(1 << 20));
        let mut reply = [0u8; 2];
        assert_eq!(queue.request(transport, &[b"lie"], &mut [&mut reply]), Err(Errno::EIO));
        assert!(queue.has_failed(), "a device writing nonsense into the used ring is reset");
        assert_eq!(transport.inner.status(), 0);
    }
}
