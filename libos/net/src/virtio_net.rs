//! The virtio-net device (virtio 1.2 §5.1): one receive queue (0) and one transmit queue (1) on
//! any `libos-virtio` transport (virtio-mmio v1/v2, modern PCI).
//!
//! - **Features** ([`choose_features`]). `MAC` (else a locally administered address is made
//!   up), `STATUS` (link state), `MRG_RXBUF` (a 12-byte header on legacy devices too, and
//!   frames spread over several receive buffers), `CSUM` + `GUEST_CSUM` together: the device
//!   completes the checksums of frames we send and vouches for those it delivers
//!   ([`crate::checksum`]); without them smoltcp does both in software. On top of those, the
//!   segmentation offloads a tap back end offers: `HOST_TSO4` (smoltcp hands over IPv4 TCP
//!   segments of up to 64 KiB and the device cuts them to the MSS) and `GUEST_TSO4`/`GUEST_TSO6`
//!   (the device hands over what the host would have sent as many segments as one large one,
//!   like Linux's GRO). A MiB of TCP then costs 16 frames through the stack instead of 720.
//!   Not `HOST_TSO6`: smoltcp 0.14 drops IPv6 packets over the MTU even when segmentation is
//!   offloaded.
//! - **Receive.** Every queue entry holds one page of a page-aligned pool; the device writes a
//!   header and a frame into it, the stack reads the frame in place and the buffer goes
//!   straight back on the ring. The ring is always full: no allocation per packet. A large
//!   frame the device spread over several buffers (`num_buffers` > 1) is read in place too
//!   when those buffers are adjacent in the pool, which they are unless the ring wrapped
//!   inside the frame: buffers go back on the ring in the order the device used them, so the
//!   ring keeps the pool's order. Otherwise it is gathered into an assembly buffer (one copy).
//!   Buffers are reposted with the physical address computed once, at start.
//! - **Transmit.** A pool of 2 KiB buffers (two per page); the stack writes a frame into a free
//!   buffer, which is published at once; the device is notified once per [`TxPath::flush`]
//!   (one exit for a burst). Finished buffers are reclaimed lazily when the pool runs low, so
//!   transmit completions need no interrupt. Segments for the device to cut go into a second,
//!   small pool of 64 KiB buffers, allocated on first use.
//! - **Interrupts.** Only the receive queue interrupts; while the stack drains a burst it
//!   suppresses them ([`RxPath::set_interrupts`]) and re-checks after re-enabling.
//!
//! This is the named module of `libos-net` allowed to use `unsafe`: publishing pool buffers to
//! the device.

use crate::checksum;
use crate::nic::{MAX_FRAME, MAX_SEGMENTATION_FRAME, NicCounters, Offload, RxPath, TxPath};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::memory::PAGE;
use libos_core::{Errno, Result};
use libos_virtio::queue::{Segment, SplitQueue, segments};
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
    /// The device may deliver IPv4 TCP segments larger than the MTU (needs `GUEST_CSUM`).
    pub const GUEST_TSO4: u64 = 1 << 7;
    /// The same for IPv6.
    pub const GUEST_TSO6: u64 = 1 << 8;
    /// The device cuts IPv4 TCP segments we send into MSS-sized ones (needs `CSUM`).
    pub const HOST_TSO4: u64 = 1 << 11;
}

/// The features to accept of those a device `offered`: the ones this driver uses, minus the
/// offloads whose prerequisites are missing (virtio 1.2 §5.1.3.1). Large received frames are
/// only taken with `MRG_RXBUF`: without it every receive buffer would have to hold 64 KiB.
pub fn choose_features(offered: u64) -> u64 {
    use feature::*;
    let mut wanted = MAC | MRG_RXBUF | STATUS;
    if offered & (CSUM | GUEST_CSUM) == CSUM | GUEST_CSUM {
        wanted |= CSUM | GUEST_CSUM | HOST_TSO4;
        if offered & MRG_RXBUF != 0 {
            wanted |= GUEST_TSO4 | GUEST_TSO6;
        }
    }
    offered & wanted
}

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Ring size cap (QEMU offers 256 per queue by default).
const QUEUE_SIZE: u16 = 256;
/// One transmit buffer: the 12-byte header and a full frame, rounded so that two share a page.
const BUFFER: usize = 2048;
/// One receive buffer: a page. Large frames spread over several, and every buffer costs a
/// repost, so a page rather than a frame's worth halves that cost per byte (measured: 2 KiB
/// buffers spent about 190 000 guest instructions per MiB received popping and reposting).
const RX_BUFFER: usize = PAGE as usize;
/// `virtio_net_hdr` with `num_buffers` (modern devices, or legacy with `MRG_RXBUF`).
const HEADER_WITH_COUNT: usize = 12;
/// Legacy header without `num_buffers`.
const HEADER_LEGACY: usize = 10;
/// Header flag: the checksum from `csum_start` on is still to be computed.
const HDR_NEEDS_CSUM: u8 = 1;
/// Header flag (receive): the device checked the checksums.
const HDR_DATA_VALID: u8 = 2;
/// Header `gso_type`: an IPv4 TCP segment to cut (transmit).
const GSO_TCPV4: u8 = 1;
/// One transmit buffer for a segment the device cuts: the header and a 64 KiB frame, rounded
/// up to whole pages.
const LARGE_BUFFER: usize = (HEADER_WITH_COUNT + MAX_SEGMENTATION_FRAME).next_multiple_of(PAGE as usize);
/// How many of them: more than a TCP send buffer of the default size keeps in flight.
const LARGE_BUFFERS: usize = 8;
/// Largest frame the device may spread over several receive buffers: an IPv6 packet with the
/// largest payload length (IPv4 ones are smaller).
const MAX_RECEIVE_FRAME: usize = 14 + 40 + 65_535;

/// A page-aligned array of equal buffers the device reads or writes.
struct Pool {
    base: *mut u8,
    layout: Layout,
    count: usize,
    size: usize,
    /// Each buffer's physical address when it is one physically contiguous piece (always, for
    /// buffers that divide a page), else `None`.
    phys: Vec<Option<u64>>,
}

// SAFETY: the pool is owned by one path (receive or transmit), which the stack's lock
// serialises; the raw pointer is only used through that owner.
unsafe impl Send for Pool {}

impl Pool {
    /// `count` buffers of `size` bytes (`size` divides a page or is a multiple of one, so no
    /// small buffer straddles a page).
    fn new(count: usize, size: usize) -> Result<Pool> {
        let layout = Layout::from_size_align((count * size).max(PAGE as usize), PAGE as usize).map_err(|_| Errno::ENOMEM)?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return Err(Errno::ENOMEM);
        }
        let phys = (0..count)
            .map(|i| {
                let (mut first, mut pieces) = (0, 0);
                segments(base as usize + i * size, size, |s| {
                    first = s.phys;
                    pieces += 1;
                });
                (pieces == 1).then_some(first)
            })
            .collect();
        Ok(Pool { base, layout, count, size, phys })
    }

    /// Buffer `i` (`i < count`).
    ///
    /// # Safety
    /// The device must not own buffer `i` (it was never published, or it came back through
    /// the used ring), and no other reference to it may be alive.
    #[allow(clippy::mut_from_ref)] // the pool hands out disjoint buffers; see the contract
    unsafe fn buffer(&self, i: usize) -> &mut [u8] {
        assert!(i < self.count, "pool buffer {i} of {}", self.count);
        let start = self.base.wrapping_add(i * self.size);
        // SAFETY: `i < count`, so the range lies inside the allocation; exclusivity is the
        // caller's promise.
        unsafe { core::slice::from_raw_parts_mut(start, self.size) }
    }

    /// Buffers `first..first + count` as one slice (they are adjacent in the pool).
    ///
    /// # Safety
    /// As [`Pool::buffer`], for each of them.
    #[allow(clippy::mut_from_ref)] // as `buffer`
    unsafe fn span(&self, first: usize, count: usize) -> &mut [u8] {
        assert!(count > 0 && first + count <= self.count, "pool buffers {first}+{count} of {}", self.count);
        let start = self.base.wrapping_add(first * self.size);
        // SAFETY: the range lies inside the allocation; exclusivity is the caller's promise.
        unsafe { core::slice::from_raw_parts_mut(start, count * self.size) }
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
    /// The buffers of the frame being received and the bytes the device wrote in each.
    parts: Vec<(usize, usize)>,
    /// Where a frame spread over buffers that are not adjacent is put together (empty until
    /// the first).
    assembly: Vec<u8>,
    counters: Arc<NicCounters>,
}

/// A transmit buffer: which pool, which buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TxBuffer {
    Small(usize),
    Large(usize),
}

/// The transmit half.
pub struct VirtioTx {
    transport: Arc<dyn Transport>,
    queue: SplitQueue,
    pool: Pool,
    /// Buffers for segments the device cuts ([`LARGE_BUFFERS`] of [`LARGE_BUFFER`] bytes),
    /// allocated on the first such segment.
    large_pool: Option<Pool>,
    /// Which buffer each in-flight token (head descriptor) holds.
    buffer_of_token: Vec<Option<TxBuffer>>,
    free: Vec<usize>,
    free_large: Vec<usize>,
    header_len: usize,
    unflushed: bool,
    /// What the device does for us.
    offload: Offload,
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
    /// What the device does for the stack (see [`Offload`]).
    pub offload: Offload,
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
        let negotiated = libos_virtio::initialize_with(&*transport, choose_features)?;
        let checksum = negotiated & (feature::CSUM | feature::GUEST_CSUM) == feature::CSUM | feature::GUEST_CSUM;
        let offload = Offload { checksum, segmentation: checksum && negotiated & feature::HOST_TSO4 != 0 };
        let fail = |e: Errno| {
            transport.set_status(status::FAILED);
            if e == Errno::ENOENT { Errno::ENODEV } else { e }
        };
        let header_len = if transport.is_modern() || negotiated & feature::MRG_RXBUF != 0 { HEADER_WITH_COUNT } else { HEADER_LEGACY };
        let mac = if negotiated & feature::MAC != 0 {
            let mut mac = [0u8; 6];
            transport.read_config(0, &mut mac).map_err(fail)?;
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
            pool: Pool::new(rx_count, RX_BUFFER).map_err(fail)?,
            header_len,
            reposted: false,
            verify: checksum,
            parts: Vec::new(),
            assembly: Vec::new(),
            counters: counters.clone(),
        };
        for i in 0..rx_count {
            rx.post(i).map_err(fail)?;
        }
        let tx = VirtioTx {
            transport: transport.clone(),
            buffer_of_token: alloc::vec![None; tx_count],
            queue: tx_queue,
            pool: Pool::new(tx_count, BUFFER).map_err(fail)?,
            large_pool: None,
            free: (0..tx_count).rev().collect(),
            free_large: Vec::new(),
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
            offload,
            transport,
        })
    }

    /// Whether the link is up (always true when the device does not report it).
    pub fn link_up(&self) -> bool {
        if !self.link_status {
            return true;
        }
        let mut status = [0u8; 2];
        // A device whose configuration never holds still has no usable link.
        self.transport.read_config(6, &mut status).is_ok() && status[0] & 1 != 0
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
        let token = match self.pool.phys[i] {
            // SAFETY: buffer `i` is not on the ring (at init, or just popped), stays alive in the
            // pool, and the CPU does not touch it until the device returns its token.
            Some(phys) => unsafe { self.queue.add_writable_segment(Segment { phys, len: RX_BUFFER as u32 })? },
            None => {
                // SAFETY: as above.
                let buffer = unsafe { self.pool.buffer(i) };
                // SAFETY: as above.
                unsafe { self.queue.add(&[], &mut [buffer])? }
            }
        };
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

impl VirtioRx {
    /// Pops the `more` buffers that follow buffer `first` (`len` bytes written, header
    /// included) into [`VirtioRx::parts`]; false (every popped buffer reposted) when the device
    /// returned fewer or wrote more than a frame can hold.
    fn gather(&mut self, first: usize, len: usize, more: usize) -> bool {
        self.parts.clear();
        self.parts.push((first, len));
        let mut total = len.checked_sub(self.header_len).filter(|_| len <= RX_BUFFER);
        for _ in 0..more {
            let Some((buffer, len)) = self.pop() else { break };
            self.parts.push((buffer, len));
            total = total.and_then(|t| t.checked_add(len)).filter(|&t| len <= RX_BUFFER && t <= MAX_RECEIVE_FRAME);
        }
        if total.is_none() || self.parts.len() != more + 1 {
            self.repost_parts();
            return false;
        }
        true
    }

    /// Puts the buffers of [`VirtioRx::parts`] back on the ring, in the order the device used
    /// them (so the ring keeps the pool's order and the next merged frame is adjacent again).
    fn repost_parts(&mut self) {
        for i in 0..self.parts.len() {
            self.repost(self.parts[i].0);
        }
    }

    /// Hands the frame in [`VirtioRx::parts`] to `f`: in place when its buffers are adjacent in
    /// the pool and all but the last are full (the device fills them in ring order, which is
    /// the pool's order but where the ring wraps), else gathered into the assembly buffer.
    fn deliver_parts(&mut self, flags: u8, f: &mut dyn FnMut(&mut [u8])) {
        let (first, _) = self.parts[0];
        let (last_index, last_len) = self.parts[self.parts.len() - 1];
        let adjacent = self.parts.iter().enumerate().all(|(i, &(buffer, len))| buffer == first + i && (buffer == last_index || len == RX_BUFFER));
        if adjacent {
            let count = self.parts.len();
            // SAFETY: the device returned these buffers; they are reposted after `f`.
            let span = unsafe { self.pool.span(first, count) };
            let end = (count - 1) * RX_BUFFER + last_len;
            Self::deliver(self.verify, &self.counters, flags, &mut span[self.header_len..end], f);
        } else {
            if self.assembly.len() < MAX_RECEIVE_FRAME {
                self.assembly.resize(MAX_RECEIVE_FRAME, 0);
            }
            let mut at = 0;
            for (i, &(buffer, len)) in self.parts.iter().enumerate() {
                let skip = if i == 0 { self.header_len } else { 0 };
                // SAFETY: the device returned this buffer; it is reposted after the copy.
                let data = unsafe { self.pool.buffer(buffer) };
                self.assembly[at..at + len - skip].copy_from_slice(&data[skip..len]);
                at += len - skip;
            }
            Self::deliver(self.verify, &self.counters, flags, &mut self.assembly[..at], f);
        }
        self.repost_parts();
    }

    /// Hands `frame` (with the header flags of its first buffer) to `f` if it is acceptable;
    /// counts it either way.
    fn deliver(verify: bool, counters: &NicCounters, flags: u8, frame: &mut [u8], f: &mut dyn FnMut(&mut [u8])) {
        if frame.len() < 14 {
            NicCounters::bump(&counters.rx_dropped);
        } else if verify && flags & (HDR_NEEDS_CSUM | HDR_DATA_VALID) == 0 && !checksum::verify(frame) {
            // Not vouched for by the device (e.g. a host program's own checksum) and wrong.
            NicCounters::bump(&counters.rx_dropped);
        } else {
            NicCounters::bump(&counters.rx_packets);
            NicCounters::add(&counters.rx_bytes, frame.len() as u64);
            f(frame);
        }
    }
}

impl RxPath for VirtioRx {
    fn receive(&mut self, f: &mut dyn FnMut(&mut [u8])) -> bool {
        let Some((buffer, len)) = self.pop() else {
            return false;
        };
        self.reposted = true;
        // SAFETY: the device returned this buffer; it is reposted only after `f` is done.
        let data = unsafe { self.pool.buffer(buffer) };
        // A header the device did not write whole is not trusted for `num_buffers` either (it
        // would make us take buffers of the frames that follow).
        let whole = len >= self.header_len && len <= RX_BUFFER;
        let buffers = if self.header_len == HEADER_WITH_COUNT && whole { u16::from_le_bytes([data[10], data[11]]) } else { 1 };
        let flags = data[0];
        if buffers > 1 {
            if self.gather(buffer, len, usize::from(buffers) - 1) {
                self.deliver_parts(flags, f);
            } else {
                NicCounters::bump(&self.counters.rx_dropped);
            }
            return true;
        }
        if buffers == 0 || !whole {
            // No buffers, truncated, or longer than the buffer: dropped and counted.
            NicCounters::bump(&self.counters.rx_dropped);
        } else {
            Self::deliver(self.verify, &self.counters, flags, &mut data[self.header_len..len], f);
        }
        self.repost(buffer);
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

impl VirtioTx {
    /// A free buffer for a frame of `len` bytes: a small one, or (for a segment the device
    /// cuts) a large one, allocating the large pool on first use.
    fn take_buffer(&mut self, len: usize) -> Option<TxBuffer> {
        if len <= BUFFER - self.header_len {
            return self.free.pop().map(TxBuffer::Small);
        }
        if self.large_pool.is_none() {
            self.large_pool = Some(Pool::new(LARGE_BUFFERS, LARGE_BUFFER).ok()?);
            self.free_large = (0..LARGE_BUFFERS).rev().collect();
        }
        self.free_large.pop().map(TxBuffer::Large)
    }

    fn give_back(&mut self, buffer: TxBuffer) {
        match buffer {
            TxBuffer::Small(i) => self.free.push(i),
            TxBuffer::Large(i) => self.free_large.push(i),
        }
    }

    /// Writes the header of `frame` (zeroed first): a partial checksum for the device to
    /// complete, and for a frame over the MTU, its segmentation: type, header length and MSS.
    /// False when the frame is over the MTU but not an IPv4 TCP segment the device can cut
    /// (it would not fit the wire).
    fn fill_header(&self, header: &mut [u8], frame: &mut [u8], segment_size: Option<u16>) -> bool {
        header.fill(0);
        let partial = if self.offload.checksum { checksum::partial(frame) } else { None };
        if let Some((start, offset)) = partial {
            header[0] = HDR_NEEDS_CSUM;
            header[6..8].copy_from_slice(&start.to_le_bytes());
            header[8..10].copy_from_slice(&offset.to_le_bytes());
        }
        if frame.len() <= MAX_FRAME {
            return true;
        }
        let ipv4_tcp = frame.get(12..14) == Some(&[0x08, 0x00]) && frame.get(23) == Some(&6);
        let (Some(mss), Some((start, _)), true) = (segment_size, partial, ipv4_tcp && self.offload.segmentation) else { return false };
        let tcp_header = frame.get(usize::from(start) + 12).map_or(0, |b| u16::from(b >> 4) * 4);
        if tcp_header < 20 {
            return false;
        }
        header[1] = GSO_TCPV4;
        header[2..4].copy_from_slice(&(start + tcp_header).to_le_bytes());
        header[4..6].copy_from_slice(&mss.to_le_bytes());
        true
    }
}

impl TxPath for VirtioTx {
    fn transmit(&mut self, len: usize, segment_size: Option<u16>, f: &mut dyn FnMut(&mut [u8])) -> bool {
        // Larger than the MTU only as an IPv4 TCP segment the device cuts.
        let limit = if segment_size.is_some() && self.offload.segmentation { MAX_SEGMENTATION_FRAME } else { MAX_FRAME };
        let buffer = match len <= limit {
            true => self.take_buffer(len).or_else(|| {
                self.reclaim();
                self.take_buffer(len)
            }),
            false => None,
        };
        let Some(buffer) = buffer else {
            NicCounters::bump(&self.counters.tx_dropped);
            return false;
        };
        let data: &mut [u8] = match (buffer, &self.large_pool) {
            // SAFETY: `buffer` was on a free list: the device does not own it.
            (TxBuffer::Small(i), _) => unsafe { self.pool.buffer(i) },
            // SAFETY: as above.
            (TxBuffer::Large(i), Some(pool)) => unsafe { pool.buffer(i) },
            // Not possible (`take_buffer` creates the pool before it hands out a large buffer).
            (TxBuffer::Large(_), None) => {
                NicCounters::bump(&self.counters.tx_dropped);
                return false;
            }
        };
        // `take_buffer` picked a buffer that holds the header and `len` bytes.
        let (header, frame) = data[..self.header_len + len].split_at_mut(self.header_len);
        f(frame);
        if !self.fill_header(header, frame, segment_size) {
            self.give_back(buffer);
            NicCounters::bump(&self.counters.tx_dropped);
            return false;
        }
        let frame = &data[..self.header_len + len];
        // SAFETY: the buffer stays in its pool and is not touched by the CPU until `reclaim`
        // pops its token.
        match unsafe { self.queue.add(&[frame], &mut []) } {
            Ok(token) => {
                self.buffer_of_token[usize::from(token)] = Some(buffer);
                self.unflushed = true;
                NicCounters::bump(&self.counters.tx_packets);
                NicCounters::add(&self.counters.tx_bytes, len as u64);
                true
            }
            Err(_) => {
                self.give_back(buffer);
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
            if let Some(buffer) = self.buffer_of_token.get_mut(usize::from(token)).and_then(Option::take) {
                self.give_back(buffer);
            }
        }
        // While every large buffer is in flight, say nothing is free: smoltcp may be about to
        // send a large segment, and a token it cannot use would lose the segment.
        if self.large_pool.is_some() && self.free_large.is_empty() { 0 } else { self.free.len() }
    }
}
