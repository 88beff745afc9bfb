//! The virtio-net device (virtio 1.2 §5.1): one receive queue (0) and one transmit queue (1) on
//! any `libos-virtio` transport (virtio-mmio v1/v2, modern PCI).
//!
//! - **Features.** `MAC` (else a locally administered address is made up), `STATUS` (link
//!   state), `MRG_RXBUF` (a 12-byte header on legacy devices too; frames still fit one buffer
//!   because no large-receive offload is negotiated), `CSUM` + `GUEST_CSUM` together: the
//!   device completes the checksums of frames we send and vouches for those it delivers
//!   ([`crate::checksum`]); without them smoltcp does both in software.
//! - **Receive.** Every queue entry holds one 2 KiB buffer of a page-aligned pool (two per
//!   page, so a buffer never straddles a page); the device writes a header and a frame into it,
//!   the stack reads the frame in place and the buffer goes straight back on the ring. The ring
//!   is always full: no allocation per packet.
//! - **Transmit.** The same kind of pool; the stack writes a frame into a free buffer, which is
//!   published at once; the device is notified once per [`TxPath::flush`] (one exit for a
//!   burst). Finished buffers are reclaimed lazily when the pool runs low, so transmit
//!   completions need no interrupt.
//! - **Interrupts.** Only the receive queue interrupts; while the stack drains a burst it
//!   suppresses them ([`RxPath::set_interrupts`]) and re-checks after re-enabling.
//!
//! This is the named module of `libos-net` allowed to use `unsafe`: publishing pool buffers to
//! the device.

use crate::checksum;
use crate::nic::{MAX_FRAME, NicCounters, RxPath, TxPath};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::memory::PAGE;
use libos_core::{Errno, Result};
use libos_virtio::queue::SplitQueue;
use libos_virtio::{Transport, status};

/// The virtio device id of a network card.
pub const DEVICE_ID: u32 = 1;

/// Device feature bits (virtio 1.2 §5.1.3).
mod feature {
    /// The device completes partial checksums of frames we send (`NEEDS_CSUM`).
    pub const CSUM: u64 = 1 << 0;
    /// The device tells which received frames have valid checksums (`DATA_VALID`).
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// The device has a MAC address in its configuration space.
    pub const MAC: u64 = 1 << 5;
    /// Receive buffers may be merged (the header carries `num_buffers`).
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// The configuration space has a link status field.
    pub const STATUS: u64 = 1 << 16;
}

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Ring size cap (QEMU offers 256 per queue by default).
const QUEUE_SIZE: u16 = 256;
/// One buffer: the 12-byte header and a full frame, rounded so that two share a page.
const BUFFER: usize = 2048;
/// `virtio_net_hdr` with `num_buffers` (modern devices, or legacy with `MRG_RXBUF`).
const HEADER_WITH_COUNT: usize = 12;
/// Legacy header without `num_buffers`.
const HEADER_LEGACY: usize = 10;
/// Header flag: the checksum from `csum_start` on is still to be computed.
const HDR_NEEDS_CSUM: u8 = 1;
/// Header flag (receive): the device checked the checksums.
const HDR_DATA_VALID: u8 = 2;

/// A page-aligned array of [`BUFFER`]-byte buffers the device reads or writes.
struct Pool {
    base: *mut u8,
    layout: Layout,
    count: usize,
}

// SAFETY: the pool is owned by one path (receive or transmit), which the stack's lock
// serialises; the raw pointer is only used through that owner.
unsafe impl Send for Pool {}

impl Pool {
    fn new(count: usize) -> Result<Pool> {
        let layout = Layout::from_size_align((count * BUFFER).max(PAGE as usize), PAGE as usize).map_err(|_| Errno::ENOMEM)?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return Err(Errno::ENOMEM);
        }
        Ok(Pool { base, layout, count })
    }

    /// Buffer `i` (`i < count`).
    ///
    /// # Safety
    /// The device must not own buffer `i` (it was never published, or it came back through
    /// the used ring), and no other reference to it may be alive.
    #[allow(clippy::mut_from_ref)] // the pool hands out disjoint buffers; see the contract
    unsafe fn buffer(&self, i: usize) -> &mut [u8] {
        debug_assert!(i < self.count);
        let start = self.base.wrapping_add(i * BUFFER);
        // SAFETY: `i < count`, so the range lies inside the allocation; exclusivity is the
        // caller's promise.
        unsafe { core::slice::from_raw_parts_mut(start, BUFFER) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. A pool is dropped only with its half,
        // whose `Drop` reset the device first, so the device no longer touches it.
        unsafe { dealloc(self.base, self.layout) }
    }
}

/// The receive half.
pub struct VirtioRx {
    transport: Arc<dyn Transport>,
    queue: SplitQueue,
    pool: Pool,
    /// Which buffer each in-flight token (head descriptor) holds.
    buffer_of_token: Vec<usize>,
    header_len: usize,
    /// Buffers went back on the ring since the last notification.
    reposted: bool,
    /// Frames the device does not vouch for are checked here (checksum offload).
    verify: bool,
    counters: Arc<NicCounters>,
}

/// The transmit half.
pub struct VirtioTx {
    transport: Arc<dyn Transport>,
    queue: SplitQueue,
    pool: Pool,
    buffer_of_token: Vec<usize>,
    free: Vec<usize>,
    header_len: usize,
    unflushed: bool,
    /// Checksums are left to the device.
    offload: bool,
    counters: Arc<NicCounters>,
}

/// A virtio-net device, initialised and running.
pub struct VirtioNet {
    /// Receive half.
    pub rx: VirtioRx,
    /// Transmit half.
    pub tx: VirtioTx,
    /// The device's MAC address.
    pub mac: [u8; 6],
    /// Where the device sits (for messages).
    pub describe: String,
    /// Counters shared by both halves.
    pub counters: Arc<NicCounters>,
    /// The transport (to acknowledge and route its interrupt).
    pub transport: Arc<dyn Transport>,
    /// TCP/UDP/ICMP checksums are left to the device (see [`crate::checksum`]).
    pub checksum_offload: bool,
    link_status: bool,
}

const NO_TOKEN: usize = usize::MAX;

impl VirtioNet {
    /// Initialises the device: features, both queues, a full receive ring. The caller routes
    /// the interrupt (see `Stack`).
    ///
    /// Errors: `ENODEV` when the device refuses the handshake or lacks a queue, `ENOMEM`.
    pub fn new(transport: Box<dyn Transport>, counters: Arc<NicCounters>) -> Result<VirtioNet> {
        let transport: Arc<dyn Transport> = Arc::from(transport);
        let negotiated = libos_virtio::initialize(&*transport, feature::MAC | feature::MRG_RXBUF | feature::STATUS | feature::CSUM | feature::GUEST_CSUM)?;
        let offload = negotiated & (feature::CSUM | feature::GUEST_CSUM) == feature::CSUM | feature::GUEST_CSUM;
        let fail = |e: Errno| {
            transport.set_status(status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        let header_len = if transport.is_modern() || negotiated & feature::MRG_RXBUF != 0 { HEADER_WITH_COUNT } else { HEADER_LEGACY };
        let mac = if negotiated & feature::MAC != 0 {
            let mut mac = [0u8; 6];
            transport.read_config(0, &mut mac);
            mac
        } else {
            // Locally administered, unicast, from the clock so that two such devices differ.
            let t = libos_core::time::Instant::now().as_nanos().to_le_bytes();
            [0x02, 0x4c, t[0], t[1], t[2], t[3]]
        };
        let rx_queue = SplitQueue::new(&*transport, RX_QUEUE, QUEUE_SIZE, false).map_err(fail)?;
        let tx_queue = SplitQueue::new(&*transport, TX_QUEUE, QUEUE_SIZE, false).map_err(fail)?;
        // Transmit completions are reclaimed lazily: no interrupts for them.
        let mut tx_queue = tx_queue;
        tx_queue.set_interrupts(false);
        let rx_count = usize::from(rx_queue.size());
        let tx_count = usize::from(tx_queue.size());
        let mut rx = VirtioRx {
            transport: transport.clone(),
            buffer_of_token: alloc::vec![NO_TOKEN; rx_count],
            queue: rx_queue,
            pool: Pool::new(rx_count).map_err(fail)?,
            header_len,
            reposted: false,
            verify: offload,
            counters: counters.clone(),
        };
        for i in 0..rx_count {
            rx.post(i).map_err(fail)?;
        }
        let tx = VirtioTx {
            transport: transport.clone(),
            buffer_of_token: alloc::vec![NO_TOKEN; tx_count],
            queue: tx_queue,
            pool: Pool::new(tx_count).map_err(fail)?,
            free: (0..tx_count).rev().collect(),
            header_len,
            unflushed: false,
            offload,
            counters: counters.clone(),
        };
        libos_virtio::finish_initialization(&*transport);
        transport.notify(RX_QUEUE);
        Ok(VirtioNet {
            describe: transport.describe(),
            rx,
            tx,
            mac,
            counters,
            link_status: negotiated & feature::STATUS != 0,
            checksum_offload: offload,
            transport,
        })
    }

    /// Whether the link is up (always true when the device does not report it).
    pub fn link_up(&self) -> bool {
        if !self.link_status {
            return true;
        }
        let mut status = [0u8; 2];
        self.transport.read_config(6, &mut status);
        status[0] & 1 != 0
    }

    /// Reads and acknowledges the device's interrupt status.
    pub fn acknowledge_interrupt(&self) -> u32 {
        self.transport.acknowledge_interrupt()
    }

}

impl Drop for VirtioRx {
    fn drop(&mut self) {
        // Reset first, so the device no longer touches the pools freed after this.
        self.transport.set_status(0);
    }
}

impl Drop for VirtioTx {
    fn drop(&mut self) {
        self.transport.set_status(0);
    }
}

impl VirtioRx {
    /// Puts buffer `i` on the receive ring.
    fn post(&mut self, i: usize) -> Result<()> {
        // SAFETY: buffer `i` is not on the ring (at init, or just popped), and no other
        // reference to it is alive.
        let buffer = unsafe { self.pool.buffer(i) };
        // SAFETY: the buffer stays alive in the pool, and the CPU does not touch it until the
        // device returns its token.
        let token = unsafe { self.queue.add(&[], &mut [buffer])? };
        self.buffer_of_token[usize::from(token)] = i;
        Ok(())
    }

    /// Pops the next used entry: (buffer, bytes written).
    fn pop(&mut self) -> Option<(usize, usize)> {
        loop {
            let (token, len) = self.queue.pop_used()?;
            let slot = self.buffer_of_token.get_mut(usize::from(token))?;
            let buffer = core::mem::replace(slot, NO_TOKEN);
            if buffer != NO_TOKEN {
                return Some((buffer, len as usize));
            }
        }
    }

    fn repost(&mut self, buffer: usize) {
        if self.post(buffer).is_err() {
            // Cannot happen while every buffer has its own slot; losing one only shrinks the ring.
            log::error!("virtio-net: receive buffer {buffer} could not be reposted");
        }
    }
}

impl RxPath for VirtioRx {
    fn receive(&mut self, f: &mut dyn FnMut(&mut [u8])) -> bool {
        let Some((buffer, len)) = self.pop() else {
            return false;
        };
        // SAFETY: the device returned this buffer; it is reposted only after `f` is done.
        let data = unsafe { self.pool.buffer(buffer) };
        let merged = self.header_len == HEADER_WITH_COUNT && u16::from_le_bytes([data[10], data[11]]) > 1;
        if len < self.header_len + 14 || len > BUFFER || len - self.header_len > MAX_FRAME || merged {
            // Truncated, oversized, or spread over several buffers (never negotiated for
            // frames this size): dropped and counted.
            NicCounters::bump(&self.counters.rx_dropped);
            if merged {
                let extra = u16::from_le_bytes([data[10], data[11]]) - 1;
                for _ in 0..extra {
                    if let Some((more, _)) = self.pop() {
                        self.repost(more);
                    }
                }
            }
        } else if self.verify && data[0] & (HDR_NEEDS_CSUM | HDR_DATA_VALID) == 0 && !checksum::verify(&data[self.header_len..len]) {
            // Not vouched for by the device (e.g. a host program's own checksum) and wrong.
            NicCounters::bump(&self.counters.rx_dropped);
        } else {
            NicCounters::bump(&self.counters.rx_packets);
            NicCounters::add(&self.counters.rx_bytes, (len - self.header_len) as u64);
            f(&mut data[self.header_len..len]);
        }
        self.repost(buffer);
        self.reposted = true;
        true
    }

    fn flush(&mut self) {
        if core::mem::take(&mut self.reposted) && self.queue.should_notify() {
            self.transport.notify(RX_QUEUE);
            NicCounters::bump(&self.counters.notifications);
        }
    }

    fn set_interrupts(&mut self, enabled: bool) -> bool {
        self.queue.set_interrupts(enabled);
        self.queue.has_used()
    }
}

impl TxPath for VirtioTx {
    fn transmit(&mut self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> bool {
        if len > MAX_FRAME || self.free.is_empty() && self.reclaim() == 0 {
            NicCounters::bump(&self.counters.tx_dropped);
            return false;
        }
        let Some(buffer) = self.free.pop() else { return false };
        // SAFETY: `buffer` is on the free list: the device does not own it.
        let data = unsafe { self.pool.buffer(buffer) };
        let (header, frame) = data.split_at_mut(self.header_len);
        header.fill(0);
        f(&mut frame[..len]);
        if self.offload
            && let Some((start, offset)) = checksum::partial(&mut frame[..len])
        {
            header[0] = HDR_NEEDS_CSUM;
            header[6..8].copy_from_slice(&start.to_le_bytes());
            header[8..10].copy_from_slice(&offset.to_le_bytes());
        }
        let frame = &data[..self.header_len + len];
        // SAFETY: the buffer stays in the pool and is not touched by the CPU until `reclaim`
        // pops its token.
        match unsafe { self.queue.add(&[frame], &mut []) } {
            Ok(token) => {
                self.buffer_of_token[usize::from(token)] = buffer;
                self.unflushed = true;
                NicCounters::bump(&self.counters.tx_packets);
                NicCounters::add(&self.counters.tx_bytes, len as u64);
                true
            }
            Err(_) => {
                self.free.push(buffer);
                NicCounters::bump(&self.counters.tx_dropped);
                false
            }
        }
    }

    fn flush(&mut self) {
        if core::mem::take(&mut self.unflushed) && self.queue.should_notify() {
            self.transport.notify(TX_QUEUE);
            NicCounters::bump(&self.counters.notifications);
        }
    }

    fn reclaim(&mut self) -> usize {
        while let Some((token, _)) = self.queue.pop_used() {
            if let Some(slot) = self.buffer_of_token.get_mut(usize::from(token)) {
                let buffer = core::mem::replace(slot, NO_TOKEN);
                if buffer != NO_TOKEN {
                    self.free.push(buffer);
                }
            }
        }
        self.free.len()
    }
}
