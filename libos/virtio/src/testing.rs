//! A fake virtio device for host tests (feature `testing`): [`FakeTransport`] records where the
//! driver put its queues and, when notified, walks the rings like a device would (direct and
//! indirect chains, readable then writable descriptors), hands the request bytes to a responder
//! and writes its answer into the writable buffers. Only meaningful on the host, where the fake
//! platform's physical addresses are the virtual ones.

use crate::{QueueAddresses, Transport};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use libos_core::hal::MemoryRegion;
use libos_core::sync::SpinLock;
use libos_core::Result;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// What the fake device answers: `Some(bytes)` to complete a request (written into the
/// writable buffers, used length = bytes written), `None` to never answer it.
pub type Responder = Box<dyn Fn(u16, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// A [`Responder`] that is also told how many bytes the writable buffers hold (a block device
/// fills the data buffers and puts its status byte in the last one).
pub type SizedResponder = Box<dyn Fn(u16, &[u8], usize) -> Option<Vec<u8>> + Send + Sync>;

#[derive(Clone, Copy, Default)]
struct QueueState {
    size: u16,
    addresses: Option<QueueAddresses>,
    next_available: u16,
    used_index: u16,
}

/// A device behind a fake transport.
pub struct FakeTransport {
    device_id: u32,
    features: u64,
    config: Vec<u8>,
    max_queue_size: u16,
    status: AtomicU8,
    queues: SpinLock<[QueueState; 4]>,
    respond: SizedResponder,
    /// Process chains when notified (else only when the test calls [`FakeTransport::process`]).
    answer_on_notify: core::sync::atomic::AtomicBool,
    /// Notifications received.
    pub notifications: AtomicU32,
    /// Requests seen (completed or not).
    pub requests: AtomicU32,
}

impl FakeTransport {
    /// A modern device with id `device_id`, offering `features`, configuration space `config`,
    /// queues of up to `max_queue_size` entries, answering with `respond`.
    pub fn new(device_id: u32, features: u64, config: Vec<u8>, max_queue_size: u16, respond: Responder) -> FakeTransport {
        FakeTransport::sized(device_id, features, config, max_queue_size, Box::new(move |queue, input, _| respond(queue, input)))
    }

    /// As [`FakeTransport::new`], with a responder told the writable length of each request.
    pub fn sized(device_id: u32, features: u64, config: Vec<u8>, max_queue_size: u16, respond: SizedResponder) -> FakeTransport {
        FakeTransport {
            device_id,
            features: features | crate::features::VERSION_1,
            config,
            max_queue_size,
            status: AtomicU8::new(0),
            queues: SpinLock::new([QueueState::default(); 4]),
            respond,
            answer_on_notify: core::sync::atomic::AtomicBool::new(true),
            notifications: AtomicU32::new(0),
            requests: AtomicU32::new(0),
        }
    }

    fn read<T: Copy>(phys: u64) -> T {
        // SAFETY: host tests only: phys = virt, and the addresses are the driver's live queue
        // memory or the live buffers it published.
        unsafe { (phys as *const T).read_volatile() }
    }

    fn write<T: Copy>(phys: u64, value: T) {
        // SAFETY: as in `read`; the device writes only the used ring and writable buffers.
        unsafe { (phys as *mut T).write_volatile(value) }
    }

    fn descriptor(table: u64, i: u16) -> (u64, u32, u16, u16) {
        let at = table + 16 * u64::from(i);
        (Self::read(at), Self::read(at + 8), Self::read(at + 12), Self::read(at + 14))
    }

    /// Whether notifications make the device process its queues at once (default), or the
    /// test does it with [`FakeTransport::process`] (to hold several requests in flight).
    pub fn set_answer_on_notify(&self, on: bool) {
        self.answer_on_notify.store(on, Ordering::Relaxed);
    }

    /// The queue addresses and size the driver set up for `queue`.
    pub fn queue(&self, queue: u16) -> Option<(u16, QueueAddresses)> {
        let state = self.queues.lock()[usize::from(queue)];
        state.addresses.map(|a| (state.size, a))
    }

    /// Processes every chain the driver made available on `queue`; returns how many.
    pub fn process(&self, queue: u16) -> usize {
        let mut count = 0;
        let mut queues = self.queues.lock();
        let state = &mut queues[usize::from(queue)];
        let Some(addresses) = state.addresses else { return 0 };
        loop {
            let available: u16 = Self::read(addresses.available + 2);
            if available == state.next_available {
                return count;
            }
            count += 1;
            let head: u16 = Self::read(addresses.available + 4 + 2 * u64::from(state.next_available % state.size));
            state.next_available = state.next_available.wrapping_add(1);
            let (mut table, mut index) = (addresses.descriptors, head);
            let mut descriptor = Self::descriptor(table, index);
            if descriptor.2 & DESC_F_INDIRECT != 0 {
                (table, index) = (descriptor.0, 0);
                descriptor = Self::descriptor(table, index);
            }
            let (mut input, mut outputs) = (Vec::new(), Vec::new());
            loop {
                let (addr, len, flags, next) = descriptor;
                if flags & DESC_F_WRITE != 0 {
                    outputs.push((addr, len as usize));
                } else {
                    // SAFETY: a live readable buffer of the driver (phys = virt on the host).
                    input.extend_from_slice(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) });
                }
                if flags & DESC_F_NEXT == 0 {
                    break;
                }
                descriptor = Self::descriptor(table, next);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let writable = outputs.iter().map(|&(_, len)| len).sum();
            let Some(reply) = (self.respond)(queue, &input, writable) else { continue };
            let mut written = 0;
            for (addr, len) in outputs {
                let n = len.min(reply.len() - written);
                // SAFETY: a live writable buffer of the driver.
                unsafe { core::ptr::copy_nonoverlapping(reply[written..].as_ptr(), addr as *mut u8, n) };
                written += n;
            }
            let element = addresses.used + 4 + 8 * u64::from(state.used_index % state.size);
            Self::write(element, u32::from(head));
            Self::write(element + 4, written as u32);
            state.used_index = state.used_index.wrapping_add(1);
            Self::write(addresses.used + 2, state.used_index);
        }
    }
}

impl Transport for FakeTransport {
    fn describe(&self) -> String {
        String::from("fake transport")
    }
    fn device_id(&self) -> u32 {
        self.device_id
    }
    fn is_modern(&self) -> bool {
        true
    }
    fn device_features(&self) -> u64 {
        self.features
    }
    fn set_driver_features(&self, _: u64) {}
    fn status(&self) -> u8 {
        self.status.load(Ordering::Relaxed)
    }
    fn set_status(&self, status: u8) {
        self.status.store(status, Ordering::Relaxed);
        if status == 0 {
            *self.queues.lock() = [QueueState::default(); 4];
        }
    }
    fn max_queue_size(&self, queue: u16) -> u16 {
        if usize::from(queue) < 4 { self.max_queue_size } else { 0 }
    }
    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        self.queues.lock()[usize::from(queue)] = QueueState { size, addresses: Some(addresses), ..QueueState::default() };
        Ok(())
    }
    fn notify(&self, queue: u16) {
        self.notifications.fetch_add(1, Ordering::Relaxed);
        if self.answer_on_notify.load(Ordering::Relaxed) {
            self.process(queue);
        }
    }
    fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.config.get(offset + i).copied().unwrap_or(0);
        }
        Ok(())
    }
    fn acknowledge_interrupt(&self) -> u32 {
        0
    }
    fn shared_memory(&self, _: u8) -> Option<MemoryRegion> {
        None
    }
}
