//! A wire for host tests (feature `testing`): [`pair`] makes two NICs whose transmit paths
//! deliver into each other's receive queues, so two [`Stack`]s can talk without a device.
//! Nothing interrupts on the host: tests call [`pump`] to move frames until the wire is quiet.

use crate::nic::{MAX_FRAME, MAX_SEGMENTATION_FRAME, NicCounters, Offload, RxPath, TxPath};
use crate::stack::{Ipv4Setup, Stack};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::sync::IrqSpinLock;

type Queue = Arc<IrqSpinLock<VecDeque<Vec<u8>>>>;

/// The receive end of one side of the wire (it counts what it hands out, as a driver does).
pub struct WireRx {
    queue: Queue,
    counters: Arc<NicCounters>,
}

/// The transmit end: frames go into the peer's queue, unless `drop_every` says otherwise.
pub struct WireTx {
    peer: Queue,
    /// Drop every n-th frame sent (0: none), to test retransmission.
    pub drop_every: usize,
    sent: usize,
}

impl RxPath for WireRx {
    fn receive(&mut self, f: &mut dyn FnMut(&mut [u8])) -> bool {
        let frame = self.queue.lock().pop_front();
        match frame {
            Some(mut frame) => {
                NicCounters::bump(&self.counters.rx_packets);
                NicCounters::add(&self.counters.rx_bytes, frame.len() as u64);
                f(&mut frame);
                true
            }
            None => false,
        }
    }

    fn flush(&mut self) {}

    fn set_interrupts(&mut self, _: bool) -> bool {
        !self.queue.lock().is_empty()
    }
}

impl TxPath for WireTx {
    fn transmit(&mut self, len: usize, segment_size: Option<u16>, f: &mut dyn FnMut(&mut [u8])) -> bool {
        // A segment for the device to cut arrives whole, as a device with large receive
        // offload on the other side hands it over.
        if len > if segment_size.is_some() { MAX_SEGMENTATION_FRAME } else { MAX_FRAME } {
            return false;
        }
        let mut frame = alloc::vec![0u8; len];
        f(&mut frame);
        self.sent += 1;
        if self.drop_every == 0 || self.sent % self.drop_every != 0 {
            self.peer.lock().push_back(frame);
        }
        true
    }

    fn flush(&mut self) {}

    fn reclaim(&mut self) -> usize {
        usize::MAX
    }
}

/// Two stacks joined by a wire, with the given IPv4 setups; `drop_every` drops every n-th
/// frame in each direction (0: none).
pub fn pair(a: Ipv4Setup, b: Ipv4Setup, drop_every: usize) -> (&'static Stack, &'static Stack) {
    pair_with(a, b, drop_every, Offload::default())
}

/// [`pair`] whose NICs claim `offload` (segmentation: large TCP segments cross whole).
pub fn pair_with(a: Ipv4Setup, b: Ipv4Setup, drop_every: usize, offload: Offload) -> (&'static Stack, &'static Stack) {
    let qa: Queue = Arc::default();
    let qb: Queue = Arc::default();
    let make = |mac: [u8; 6], rx: &Queue, tx: &Queue, setup| {
        let counters = Arc::new(NicCounters::default());
        let stack = Stack::new(
            mac,
            Box::new(WireRx { queue: rx.clone(), counters: counters.clone() }),
            Box::new(WireTx { peer: tx.clone(), drop_every, sent: 0 }),
            counters,
            setup,
            None,
            "wire".into(),
            offload,
        );
        &*Box::leak(Box::new(stack))
    };
    (make([2, 0, 0, 0, 0, 1], &qa, &qb, a), make([2, 0, 0, 0, 0, 2], &qb, &qa, b))
}

/// Moves frames between `stacks` until none is left (at most `rounds` rounds).
pub fn pump(stacks: &[&'static Stack], rounds: usize) {
    for _ in 0..rounds {
        let mut moved = false;
        for stack in stacks {
            let before = stack.counters.snapshot().rx_packets;
            stack.poll_receive();
            stack.run_timers();
            moved |= stack.counters.snapshot().rx_packets != before;
        }
        if !moved {
            return;
        }
    }
}

/// Runs `f` on `from`, then returns (and delivers) every frame it sent to `to` meanwhile.
pub fn capture(from: &'static Stack, to: &'static Stack, f: impl FnOnce(&'static Stack)) -> Vec<Vec<u8>> {
    f(from);
    let mut frames = Vec::new();
    to.with(|inner| {
        let rx = inner.take_rx();
        if let Some(mut rx) = rx {
            while rx.receive(&mut |frame| frames.push(frame.to_vec())) {}
            inner.put_rx(rx);
        }
    });
    frames
}
