//! What the stack needs from a network card: a receive path and a transmit path that can be
//! borrowed separately (a received frame is processed while replies go out), counters, and the
//! smoltcp `Device` adapters built on them.
//!
//! - [`RxPath`] hands out one received frame at a time, in place (the buffer goes back to the
//!   device once the stack is done with it: no copy).
//! - [`TxPath`] lends a transmit buffer to fill; [`TxPath::flush`] tells the device about
//!   everything queued since the last flush with one notification, so a burst of replies costs
//!   one device exit.
//! - [`Ingress`] is the `smoltcp::phy::Device` the stack polls with: it yields exactly the one
//!   frame the demultiplexer already looked at (none when the stack only sends).

use core::sync::atomic::{AtomicU64, Ordering};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

/// Largest Ethernet frame without the frame check sequence (1500-byte MTU + 14-byte header).
pub const MAX_FRAME: usize = 1514;
/// Largest frame of a TCP segment the device cuts into MSS-sized ones (segmentation offload),
/// or hands over whole (large receive): 64 KiB, Ethernet header included, which keeps the IPv4
/// total length inside its 16 bits.
pub const MAX_SEGMENTATION_FRAME: usize = 64 * 1024;

/// What the device does for the stack, fixed when the stack is created (smoltcp keeps the
/// capabilities it saw then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// TCP/UDP/ICMP checksums are the device's: it completes the ones we leave partial and
    /// vouches for the ones it delivers (see [`crate::checksum`]).
    pub checksum: bool,
    /// IPv4 TCP segments up to [`MAX_SEGMENTATION_FRAME`] go out whole and the device cuts them
    /// to the MSS [`TxPath::transmit`] is given (TSO); only set together with `checksum`.
    pub segmentation: bool,
}

/// The receive half of a NIC.
pub trait RxPath: Send {
    /// Calls `f` with the next received frame (Ethernet header first) and gives its buffer back
    /// to the device afterwards. Returns false when no frame is waiting.
    fn receive(&mut self, f: &mut dyn FnMut(&mut [u8])) -> bool;

    /// Tells the device about the buffers given back since the last flush (one notification
    /// for a burst, and only if the device asked for them).
    fn flush(&mut self);

    /// Asks the device to interrupt (true) or not (false) when frames arrive. Returns whether
    /// frames arrived that were not yet handed out (re-check after enabling: one may have come
    /// in between).
    fn set_interrupts(&mut self, enabled: bool) -> bool;
}

/// The transmit half of a NIC.
pub trait TxPath: Send {
    /// Lends a buffer of `len` bytes to `f`, which writes one whole frame into it; the frame is
    /// queued for the device. With `segment_size`, the frame is a TCP segment larger than the
    /// path's MSS that the device cuts into segments of that many payload bytes (only when the
    /// path offered [`Offload::segmentation`]). Returns false (and does not call `f`) when every
    /// buffer is in flight or `len` is too large.
    fn transmit(&mut self, len: usize, segment_size: Option<u16>, f: &mut dyn FnMut(&mut [u8])) -> bool;

    /// Notifies the device of the frames queued since the last flush (if it wants to be told).
    fn flush(&mut self);

    /// Takes back the buffers the device finished sending; returns how many are free now.
    fn reclaim(&mut self) -> usize;
}

/// Counters of one NIC (relaxed atomics: updated by the paths, read by `interfaces()`).
#[derive(Debug, Default)]
pub struct NicCounters {
    /// Frames received (handed to the stack).
    pub rx_packets: AtomicU64,
    /// Frames queued for transmission.
    pub tx_packets: AtomicU64,
    /// Bytes received (Ethernet frames, no virtio header).
    pub rx_bytes: AtomicU64,
    /// Bytes queued for transmission.
    pub tx_bytes: AtomicU64,
    /// Frames dropped: malformed, truncated, too large, unparseable, or for a full backlog.
    pub rx_dropped: AtomicU64,
    /// Frames the stack could not send because every transmit buffer was in flight.
    pub tx_dropped: AtomicU64,
    /// Device interrupts handled.
    pub interrupts: AtomicU64,
    /// Queue notifications written to the device.
    pub notifications: AtomicU64,
    /// ICMP (v4 and v6) echo requests received.
    pub icmp_echo_requests: AtomicU64,
    /// Times the stack's timers ran (the network thread waking for a TCP timer).
    pub timer_runs: AtomicU64,
}

/// A snapshot of [`NicCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped on receive (malformed, truncated, oversized, backlog full).
    pub rx_dropped: u64,
    /// Frames not sent for lack of a transmit buffer (TCP sends them again).
    pub tx_dropped: u64,
    /// Device interrupts handled.
    pub interrupts: u64,
    /// Queue notifications (device exits on real hardware virtualization).
    pub notifications: u64,
    /// ICMP echo requests received (IPv4 and IPv6).
    pub icmp_echo_requests: u64,
    /// Times the stack's timers ran.
    pub timer_runs: u64,
}

impl NicCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> NicStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NicStats {
            rx_packets: get(&self.rx_packets),
            tx_packets: get(&self.tx_packets),
            rx_bytes: get(&self.rx_bytes),
            tx_bytes: get(&self.tx_bytes),
            rx_dropped: get(&self.rx_dropped),
            tx_dropped: get(&self.tx_dropped),
            interrupts: get(&self.interrupts),
            notifications: get(&self.notifications),
            icmp_echo_requests: get(&self.icmp_echo_requests),
            timer_runs: get(&self.timer_runs),
        }
    }
}

/// What smoltcp is told about the device: with checksum offload, TCP/UDP/ICMP checksums are
/// the driver's and the device's business (see [`crate::checksum`]); with segmentation offload,
/// smoltcp sends TCP segments of up to [`MAX_SEGMENTATION_FRAME`] and says which MSS to cut
/// them to.
pub fn capabilities(offload: Offload) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    if offload.segmentation {
        // IPv4 only: smoltcp 0.14 drops an IPv6 packet over the MTU (it has no IPv6
        // fragmentation) before it looks at the segmentation request, so large IPv6 segments
        // would be lost and the connection would stall.
        caps.segmentation.tcpv4 = core::num::NonZeroUsize::new(MAX_SEGMENTATION_FRAME);
    }
    if offload.checksum {
        caps.checksum.tcp = phy::Checksum::None;
        caps.checksum.udp = phy::Checksum::None;
        caps.checksum.icmpv4 = phy::Checksum::None;
        caps.checksum.icmpv6 = phy::Checksum::None;
    }
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = MAX_FRAME;
    // One frame per poll keeps the per-packet work bounded; bursts are handled by the
    // interrupt loop, not by smoltcp.
    caps.max_burst_size = None;
    caps
}

/// The device the stack polls smoltcp with: it yields the one frame the demultiplexer already
/// looked at (none for egress-only polls), then nothing, and transmits through `tx`.
pub struct Ingress<'a> {
    /// The frame still to hand out.
    pub frame: Option<&'a mut [u8]>,
    /// Where replies go.
    pub tx: &'a mut dyn TxPath,
    /// Whether an ARP/NDP frame was sent (a socket found no neighbour: see `Stack`).
    pub sent_discovery: bool,
    /// What the device does for the stack (must match what the interface was created with).
    pub offload: Offload,
}

/// Received-frame token of [`Ingress`].
pub struct RxToken<'a>(&'a mut [u8]);

/// Transmit token of [`Ingress`].
pub struct TxToken<'a> {
    tx: &'a mut dyn TxPath,
    sent_discovery: &'a mut bool,
    /// The MSS the device cuts this frame to, when smoltcp asks for segmentation.
    segment_size: Option<u16>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Whether `frame` is ARP or ICMPv6 neighbour solicitation (what smoltcp sends when a socket's
/// next hop has no link-layer address yet).
fn is_discovery(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => true,
        Some([0x86, 0xdd]) => frame.get(20) == Some(&58) && frame.get(54) == Some(&135),
        _ => false,
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut result = None;
        let mut discovery = false;
        let sent = self.tx.transmit(len, self.segment_size, &mut |buffer| {
            if let Some(f) = f.take() {
                result = Some(f(buffer));
                discovery = is_discovery(buffer);
            }
        });
        if sent {
            *self.sent_discovery |= discovery;
        }
        match (result, f) {
            (Some(result), _) => result,
            // The frame was too large for a buffer (`transmit` checked that one is free): let
            // smoltcp build it into scratch memory and drop it; the counter says so.
            (None, Some(f)) => {
                let mut scratch = alloc::vec![0u8; len];
                f(&mut scratch)
            }
            (None, None) => unreachable!("the frame callback ran but gave no result"),
        }
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.segment_size = meta.segmentation_offload_size.map(core::num::NonZeroU16::get);
    }
}

impl Device for Ingress<'_> {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let frame = self.frame.take()?;
        Some((RxToken(frame), TxToken { tx: &mut *self.tx, sent_discovery: &mut self.sent_discovery, segment_size: None }))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        // No free buffer: smoltcp keeps the data and tries again on a later poll.
        if self.tx.reclaim() == 0 {
            return None;
        }
        Some(TxToken { tx: &mut *self.tx, sent_discovery: &mut self.sent_discovery, segment_size: None })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.offload)
    }
}
