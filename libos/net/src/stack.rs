//! The stack: one smoltcp `Interface` over one NIC, every socket in a `SocketSet` of its own,
//! and the demultiplexer, timers and wake-ups around them.
//!
//! ## Why one `SocketSet` per socket
//! smoltcp offers each received packet to the sockets of the set it is polled with, one by
//! one, and walks the whole set again for egress and for its next deadline. With thousands of
//! connections that is thousands of checks per packet. Here the demultiplexer
//! ([`crate::flow::classify`] + hash maps) picks the one slot a frame is for and polls smoltcp
//! with that slot's set only; egress runs only for slots that have something to do (the one
//! that just received, the one a user call touched, the ones whose timer is due). The cost per
//! packet is a hash lookup, whatever the number of sockets.
//!
//! - **Slots** ([`Slot`]): id 0 is the control slot (the DHCP client; ARP, ICMP, NDP go there).
//!   TCP connections and UDP sockets have one each; a listener has one without a smoltcp socket
//!   plus a pool of listening sockets that become connections (its backlog).
//! - **Timers**: each slot's next smoltcp deadline sits in an ordered set; whoever runs
//!   [`Stack::run_timers`] (the network thread, or a blocked caller without a scheduler) polls
//!   just the due slots.
//! - **Neighbour discovery**: a slot whose egress had to ask ARP/NDP for its next hop is
//!   remembered; when a discovery frame comes in, those slots (only) are polled again.
//! - **Locking**: everything lives under one interrupt-masking lock; the interrupt handler
//!   processes received frames itself (no thread hop, so an echo costs one interrupt), and
//!   wake-ups happen after the lock is released.

use crate::flow::{self, Flow};
use crate::nic::{Ingress, NicCounters, Offload, RxPath, TxPath};
use crate::poller::Shared;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use hashbrown::HashMap;
use libos_core::blocking::WaitQueue;
use libos_core::sched::{self, ThreadId};
use libos_core::sync::IrqSpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr, Ipv6Address};

mod slots;

/// The control slot's id.
pub const CONTROL: usize = 0;
/// Listening sockets kept ready per listener (more are made as SYNs use them up, up to the
/// backlog), so a listener with a large backlog does not hold all its buffers up front.
const IDLE_LISTENERS: usize = 2;
/// Default TCP buffer size, each direction (kernel option `tcp_buffer=`).
pub const DEFAULT_TCP_BUFFER: usize = 128 * 1024;
/// How long a closed-by-the-app connection may wait for the peer before it is aborted.
const LINGER: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(60);

/// `len` zero bytes, or `ENOMEM` (instead of the allocator aborting the kernel).
pub fn zeroed(len: usize) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    buffer.resize(len, 0);
    Ok(buffer)
}

/// smoltcp's clock from ours.
pub fn smol_now() -> SmolInstant {
    SmolInstant::from_micros((Instant::now().as_nanos() / 1000) as i64)
}

fn to_ours(at: SmolInstant) -> Instant {
    Instant::from_nanos(at.total_micros().max(0) as u64 * 1000)
}

/// What a slot holds.
pub enum Kind {
    /// Not in use.
    Free,
    /// The DHCP client; frames for nobody in particular.
    Control,
    /// A TCP connection (or a listening socket of a listener's pool).
    Tcp,
    /// A UDP socket.
    Udp,
    /// A listener: its pool and accept queue.
    Listener(Listener),
}

/// A listener's state.
pub struct Listener {
    /// The port (and address, `None` for any) it listens on.
    pub endpoint: smoltcp::wire::IpListenEndpoint,
    /// Most connections it holds at once that the app did not accept yet (listening,
    /// half-open and established).
    pub backlog: usize,
    /// Slots listening right now.
    pub idle: Vec<usize>,
    /// Established connections waiting for `accept`.
    pub ready: VecDeque<usize>,
    /// Slots owned by this listener (idle, half-open, ready).
    pub members: usize,
}

/// One socket's place in the stack.
pub struct Slot {
    /// What it holds.
    pub kind: Kind,
    /// The smoltcp socket (none for listeners and free slots).
    pub set: SocketSet<'static>,
    /// Its handle in `set`.
    pub handle: Option<SocketHandle>,
    /// Waiters and poller registration.
    pub shared: Arc<Shared>,
    /// The TCP flow it is keyed under in the demultiplexer.
    pub flow: Option<(IpEndpoint, IpEndpoint)>,
    /// The listener whose pool it belongs to, until accepted.
    pub parent: Option<usize>,
    /// Its entry in the timer set.
    pub timer: Option<i64>,
    /// An app object refers to it (when false, the slot is freed once the socket closes).
    pub user: bool,
    /// Bumped when the slot is freed, so stale references fail with `EBADF`.
    pub generation: u64,
    /// Last TCP state seen (to tell a reset from an orderly close).
    pub last_state: tcp::State,
    /// The error a TCP connection ended with.
    pub error: Option<Errno>,
    /// Bytes of the UDP port or TCP local port it holds in the port tables.
    pub port: Option<u16>,
    /// It may be waiting for a neighbour's link-layer address: polled again when an ARP or
    /// NDP frame comes in (see `Inner::neighbor_waiting`).
    pub neighbor_waiting: bool,
    /// It is in its listener's accept queue (a flag rather than a search of a queue that may
    /// hold the whole backlog, on every segment of a connection not accepted yet).
    pub accept_queued: bool,
}

impl Slot {
    fn new(kind: Kind) -> Slot {
        Slot {
            kind,
            set: SocketSet::new(Vec::new()),
            handle: None,
            shared: Arc::new(Shared::default()),
            flow: None,
            parent: None,
            timer: None,
            user: true,
            generation: 0,
            last_state: tcp::State::Closed,
            error: None,
            port: None,
            neighbor_waiting: false,
            accept_queued: false,
        }
    }

    /// The TCP socket of a TCP slot.
    pub fn tcp(&mut self) -> Option<&mut tcp::Socket<'static>> {
        match (&self.kind, self.handle) {
            (Kind::Tcp, Some(h)) => Some(self.set.get_mut::<tcp::Socket<'static>>(h)),
            _ => None,
        }
    }

    /// The UDP socket of a UDP slot.
    pub fn udp(&mut self) -> Option<&mut udp::Socket<'static>> {
        match (&self.kind, self.handle) {
            (Kind::Udp, Some(h)) => Some(self.set.get_mut::<udp::Socket<'static>>(h)),
            _ => None,
        }
    }
}

/// The IPv4 configuration in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ipv4Config {
    /// Address and prefix.
    pub address: Option<Ipv4Cidr>,
    /// Default gateway.
    pub gateway: Option<Ipv4Address>,
    /// DNS server.
    pub dns: Option<Ipv4Address>,
}

/// Everything under the stack's lock.
pub struct Inner {
    /// smoltcp's interface state (addresses, routes, neighbour cache).
    pub iface: Interface,
    rx: Option<Box<dyn RxPath>>,
    /// The transmit path.
    pub tx: Box<dyn TxPath>,
    /// Every slot; index = id.
    pub slots: Vec<Slot>,
    free_slots: Vec<usize>,
    tcp_flows: HashMap<(IpEndpoint, IpEndpoint), usize>,
    /// Listener slot by port.
    pub listeners: HashMap<u16, usize>,
    /// UDP slot by port.
    pub udp_ports: HashMap<u16, usize>,
    /// Local TCP ports of connections we opened (port -> how many use it).
    pub tcp_client_ports: HashMap<u16, usize>,
    timers: BTreeSet<(i64, usize)>,
    /// Slots that may wait for a neighbour, polled again when an ARP/NDP frame comes in. A
    /// slot's `neighbor_waiting` flag says whether it is listed, so noting one costs O(1)
    /// whatever the number of connections (a `contains` scan here cost 10 000 connections about
    /// 55 000 instructions per packet: a TCP segment sent with the initial one-second RTO looks
    /// like a silenced socket, see `settle`). Entries of freed slots lose their flag and are
    /// skipped.
    neighbor_waiting: Vec<usize>,
    empty: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    /// Current IPv4 configuration.
    pub ipv4: Ipv4Config,
    /// The IPv4 configuration changed since the last wake-up of address waiters.
    ipv4_changed: bool,
    /// TCP buffer size per direction for new connections.
    pub tcp_buffer: usize,
    next_ephemeral: u16,
    wakes: Vec<Arc<Shared>>,
    /// Scratch list of the slots a timer run polls (kept for its capacity).
    due: Vec<usize>,
    /// The earliest timer the network thread was told about (micros; `i64::MAX`: none).
    armed: i64,
    /// What the device does for the stack (fixed at creation: smoltcp keeps the capabilities
    /// it saw then).
    offload: Offload,
    counters: Arc<NicCounters>,
}

/// How the interface gets its IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Setup {
    /// DHCPv4.
    Dhcp,
    /// Fixed.
    Static(Ipv4Config),
    /// No IPv4 (link-local IPv6 only).
    None,
}

/// A network interface with its stack.
pub struct Stack {
    inner: IrqSpinLock<Inner>,
    /// The NIC's counters.
    pub counters: Arc<NicCounters>,
    /// The MAC address.
    pub mac: [u8; 6],
    /// Where the NIC sits (for messages).
    pub describe: String,
    /// The earliest timer moved earlier while the network thread could not be told by moving
    /// its wake-up (it was not parked): it must look again before it parks.
    timer_kick: AtomicBool,
    /// A thread runs [`Stack::timer_loop`]; blocked callers need not run timers themselves.
    has_timer_thread: AtomicBool,
    /// That thread's id (`u64::MAX` until it starts).
    timer_thread: AtomicU64,
    /// The NIC has no interrupt: frames are picked up every millisecond.
    polling: AtomicBool,
    /// Woken when the IPv4 configuration changes.
    pub address_waiters: WaitQueue,
    /// Woken when ICMP echo requests came in (benchmarks wait for a count without a timer).
    pub echo_waiters: WaitQueue,
    /// The echo-request count a waiter on `echo_waiters` waits for (woken only then, so a
    /// flood does not wake it once per packet).
    pub echo_target: AtomicU64,
}

impl Stack {
    /// A stack over the NIC halves `rx`/`tx` with address `mac`.
    #[allow(clippy::too_many_arguments)] // one per thing a NIC and its configuration bring
    pub fn new(
        mac: [u8; 6],
        rx: Box<dyn RxPath>,
        mut tx: Box<dyn TxPath>,
        counters: Arc<NicCounters>,
        setup: Ipv4Setup,
        ipv6: Option<(Ipv6Address, u8)>,
        describe: String,
        offload: Offload,
    ) -> Stack {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // smoltcp draws TCP initial sequence numbers, ephemeral ports and DHCP transaction ids
        // from this seed: take it from the kernel's generator (seeded by virtio-rng or the
        // CPU's instruction; never blocks, see `libos_core::random`).
        let mut seed = [0u8; 8];
        libos_core::random::fill_insecure(&mut seed);
        config.random_seed = u64::from_le_bytes(seed);
        let iface = Interface::new(config, &mut Ingress { frame: None, tx: &mut *tx, sent_discovery: false, offload }, smol_now());
        let mut control = Slot::new(Kind::Control);
        control.user = false;
        let mut inner = Inner {
            iface,
            rx: Some(rx),
            tx,
            slots: alloc::vec![control],
            free_slots: Vec::new(),
            tcp_flows: HashMap::new(),
            listeners: HashMap::new(),
            udp_ports: HashMap::new(),
            tcp_client_ports: HashMap::new(),
            timers: BTreeSet::new(),
            neighbor_waiting: Vec::new(),
            empty: SocketSet::new(Vec::new()),
            dhcp: None,
            ipv4: Ipv4Config::default(),
            ipv4_changed: false,
            tcp_buffer: DEFAULT_TCP_BUFFER,
            next_ephemeral: 49152 + (Instant::now().as_nanos() % 16384) as u16,
            wakes: Vec::new(),
            due: Vec::new(),
            armed: i64::MAX,
            offload,
            counters: counters.clone(),
        };
        // IPv6: the link-local address from the MAC (modified EUI-64), and a configured one.
        let m = mac;
        let link_local = Ipv6Address::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([m[0] ^ 2, m[1]]),
            u16::from_be_bytes([m[2], 0xff]),
            u16::from_be_bytes([0xfe, m[3]]),
            u16::from_be_bytes([m[4], m[5]]),
        );
        inner.iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(link_local), 64));
            if let Some((address, prefix)) = ipv6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(address), prefix));
            }
        });
        match setup {
            Ipv4Setup::Dhcp => {
                let handle = inner.slots[CONTROL].set.add(dhcpv4::Socket::new());
                inner.dhcp = Some(handle);
            }
            Ipv4Setup::Static(config) => inner.apply_ipv4(config),
            Ipv4Setup::None => {}
        }
        let stack = Stack {
            inner: IrqSpinLock::new(inner),
            counters,
            mac,
            describe,
            timer_kick: AtomicBool::new(false),
            has_timer_thread: AtomicBool::new(false),
            timer_thread: AtomicU64::new(u64::MAX),
            polling: AtomicBool::new(false),
            address_waiters: WaitQueue::new(),
            echo_waiters: WaitQueue::new(),
            echo_target: AtomicU64::new(u64::MAX),
        };
        // Start DHCP (its first DISCOVER) right away.
        stack.with(|inner| inner.egress(CONTROL));
        stack
    }

    /// Runs `f` with the stack locked, then flushes the NIC and delivers the wake-ups `f` caused.
    pub fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut inner = self.inner.lock();
        let result = f(&mut inner);
        self.finish(inner);
        result
    }

    /// Locks the stack without flushing (for wait conditions, which must stay short: the
    /// caller calls [`Stack::deliver_wakes`] after the wait).
    pub fn lock(&self) -> libos_core::sync::IrqSpinLockGuard<'_, Inner> {
        self.inner.lock()
    }

    fn finish(&self, mut inner: libos_core::sync::IrqSpinLockGuard<'_, Inner>) {
        inner.tx.flush();
        if let Some(rx) = inner.rx.as_mut() {
            rx.flush();
        }
        let kick = inner.timer_moved_earlier().then_some(inner.armed);
        let dhcp_changed = core::mem::take(&mut inner.ipv4_changed);
        let mut wakes = core::mem::take(&mut inner.wakes);
        drop(inner);
        for shared in wakes.drain(..) {
            shared.wake();
        }
        if !wakes.is_empty() || wakes.capacity() > 0 {
            let mut inner = self.inner.lock();
            if inner.wakes.is_empty() {
                inner.wakes = wakes;
            }
        }
        if let Some(at) = kick {
            self.tell_timer_thread(to_ours(SmolInstant::from_micros(at)));
        }
        if self.counters.icmp_echo_requests.load(Ordering::Relaxed) >= self.echo_target.load(Ordering::Relaxed) {
            self.echo_waiters.wake_all();
        }
        if dhcp_changed {
            self.address_waiters.wake_all();
        }
    }

    /// Delivers wake-ups queued by work done under [`Stack::lock`].
    pub fn deliver_wakes(&self) {
        let inner = self.inner.lock();
        self.finish(inner);
    }

    /// The NIC interrupt: acknowledge, then process every received frame, with the device's
    /// interrupts off while the burst lasts.
    pub fn handle_interrupt(&self, acknowledge: impl FnOnce() -> u32) {
        acknowledge();
        NicCounters::bump(&self.counters.interrupts);
        self.poll_receive();
    }

    /// Processes every frame waiting in the receive ring.
    pub fn poll_receive(&self) {
        self.with(|inner| {
            let Some(mut rx) = inner.rx.take() else { return };
            loop {
                rx.set_interrupts(false);
                while rx.receive(&mut |frame| inner.ingress(frame)) {}
                if !rx.set_interrupts(true) {
                    break;
                }
            }
            inner.rx = Some(rx);
        });
    }

    /// Polls every slot whose timer is due.
    pub fn run_timers(&self) {
        self.with(|inner| inner.run_timers());
    }

    /// When the next timer is due, if any (within a millisecond when the NIC is polled).
    pub fn next_timer(&self) -> Option<Instant> {
        let mut inner = self.inner.lock();
        let next = inner.timers.first().map(|&(at, _)| at);
        inner.armed = next.unwrap_or(i64::MAX);
        drop(inner);
        let next = next.map(|at| to_ours(SmolInstant::from_micros(at)));
        if self.polling.load(Ordering::Relaxed) {
            let poll = Instant::now() + core::time::Duration::from_millis(1);
            return Some(next.map_or(poll, |n| n.min(poll)));
        }
        next
    }

    /// Takes the network thread's "timer moved earlier" flag (host tests).
    #[cfg(test)]
    pub fn take_kick(&self) -> bool {
        self.timer_kick.swap(false, Ordering::AcqRel)
    }

    /// The NIC has no interrupt: whoever runs the timers also picks up received frames.
    pub fn set_polling(&self) {
        self.polling.store(true, Ordering::Relaxed);
    }

    /// The network thread's loop (started by `libos` when the image has a scheduler): runs the
    /// timers when they are due; sleeps otherwise (no periodic tick: an idle stack with open
    /// connections wakes only for TCP's own timers).
    pub fn timer_loop(&self) -> ! {
        self.timer_thread.store(sched::current().0, Ordering::Release);
        self.has_timer_thread.store(true, Ordering::Release);
        loop {
            let next = self.next_timer();
            // A kick after `next_timer` means an earlier timer it did not see: look again. (One
            // that comes after this check finds the thread parked, or leaves it a wake token.)
            if !self.timer_kick.swap(false, Ordering::AcqRel) {
                match next {
                    Some(deadline) => sched::park_until(deadline),
                    None => sched::park(),
                }
            }
            if self.polling.load(Ordering::Relaxed) {
                self.poll_receive();
            }
            self.run_timers();
        }
    }

    /// The earliest timer is now `at`, earlier than the network thread sleeps until: move its
    /// wake-up there if it is parked (no switch to it and back: a request/response server arms
    /// and cancels a delayed-ACK or retransmission timer on every round trip), else leave it a
    /// kick and a wake token so that it looks again before parking.
    fn tell_timer_thread(&self, at: Instant) {
        let thread = self.timer_thread.load(Ordering::Acquire);
        if thread != u64::MAX && sched::wake_by(ThreadId(thread), at) {
            return;
        }
        self.timer_kick.store(true, Ordering::Release);
        if thread != u64::MAX {
            sched::unpark(ThreadId(thread));
        }
    }

    /// Blocks until `attempt` (run with the stack locked) returns `Ok(Some(_))` or an error,
    /// `deadline` passes (`EAGAIN`), or at once when `nonblocking` (`EAGAIN`). Waits on
    /// `shared`'s queue. A signal layer's [`crate::hooks`] end the wait with `EINTR` when the
    /// thread has a signal to take (after one last attempt, so what is ready is not lost).
    pub fn block_on<T>(
        &self,
        shared: &Shared,
        nonblocking: bool,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Inner) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut outcome = None;
        let mut check = || {
            if outcome.is_some() {
                return true;
            }
            let mut inner = self.inner.lock();
            match attempt(&mut inner) {
                Ok(None) => false,
                Ok(Some(v)) => {
                    outcome = Some(Ok(v));
                    true
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    true
                }
            }
        };
        let interrupted = crate::hooks::interrupted;
        if nonblocking || interrupted() {
            check();
        } else {
            self.wait_for(&shared.waiters, deadline, || check() || interrupted());
        }
        self.deliver_wakes();
        // A signal for the thread ends the wait unless the call got its outcome first.
        outcome.unwrap_or_else(|| Err(if !nonblocking && interrupted() { Errno::EINTR } else { Errno::EAGAIN }))
    }

    /// Waits on `queue` until `ready()` or `deadline`. Without a network thread the waiter
    /// runs due timers itself (and picks up frames whose interrupt it slept through).
    pub fn wait_for(&self, queue: &WaitQueue, deadline: Option<Instant>, mut ready: impl FnMut() -> bool) {
        loop {
            let timer = if self.has_timer_thread.load(Ordering::Acquire) { None } else { self.next_timer() };
            let wake_at = match (deadline, timer) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, t) => d.or(t),
            };
            let done = match wake_at {
                Some(at) => queue.wait_until_deadline(&mut ready, at),
                None => {
                    queue.wait_until(&mut ready);
                    true
                }
            };
            if done || deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            if timer.is_some() {
                self.run_timers();
                self.poll_receive();
            }
        }
    }
}

impl Inner {
    fn timer_moved_earlier(&mut self) -> bool {
        match self.timers.first() {
            Some(&(at, _)) if at < self.armed => {
                self.armed = at;
                true
            }
            _ => false,
        }
    }

    /// Processes one received frame.
    fn ingress(&mut self, frame: &mut [u8]) {
        let target = match flow::classify(frame) {
            Flow::Malformed => {
                NicCounters::bump(&self.counters.rx_dropped);
                return;
            }
            Flow::Other { echo_request } => {
                if echo_request {
                    NicCounters::bump(&self.counters.icmp_echo_requests);
                }
                Some(CONTROL)
            }
            Flow::Tcp { local, remote, syn } => match self.tcp_flows.get(&(local, remote)) {
                Some(&slot) => Some(slot),
                None if syn => match self.listeners.get(&local.port).copied() {
                    Some(listener) => match self.idle_listener(listener) {
                        Some(slot) => Some(slot),
                        None => {
                            // Backlog full: drop the SYN (the peer retries), as Linux does.
                            NicCounters::bump(&self.counters.rx_dropped);
                            return;
                        }
                    },
                    None => None,
                },
                None => None,
            },
            Flow::Udp { local, .. } => match self.udp_ports.get(&local.port) {
                Some(&slot) => Some(slot),
                None if local.port == 68 && self.dhcp.is_some() => Some(CONTROL),
                None => None,
            },
        };
        let discovery = matches!(frame.get(12..14), Some([0x08, 0x06]) | Some([0x86, 0xdd]));
        let now = smol_now();
        let mut device = Ingress { frame: Some(frame), tx: &mut *self.tx, sent_discovery: false, offload: self.offload };
        match target {
            // No socket: smoltcp answers with a RST or an ICMP port unreachable.
            None => {
                self.iface.poll_ingress_single(now, &mut device, &mut self.empty);
            }
            Some(slot) => {
                self.iface.poll_ingress_single(now, &mut device, &mut self.slots[slot].set);
                let sent_discovery = device.sent_discovery;
                self.note_discovery(slot, sent_discovery);
                self.egress(slot);
            }
        }
        if discovery && target == Some(CONTROL) && !self.neighbor_waiting.is_empty() {
            for slot in core::mem::take(&mut self.neighbor_waiting) {
                if core::mem::take(&mut self.slots[slot].neighbor_waiting) {
                    self.egress(slot);
                }
            }
        }
    }

    /// Takes the receive path out (host tests inspect what arrived).
    #[cfg(any(test, feature = "testing"))]
    pub fn take_rx(&mut self) -> Option<Box<dyn RxPath>> {
        self.rx.take()
    }

    /// Puts the receive path back.
    #[cfg(any(test, feature = "testing"))]
    pub fn put_rx(&mut self, rx: Box<dyn RxPath>) {
        self.rx = Some(rx);
    }

    /// How long the neighbour-waiting list is (host tests: it stays bounded).
    #[cfg(test)]
    pub fn neighbor_waiting_len(&self) -> usize {
        self.neighbor_waiting.len()
    }

    /// [`Inner::ingress`] for host tests.
    #[cfg(test)]
    pub fn ingress_for_test(&mut self, frame: &mut [u8]) {
        self.ingress(frame);
    }

    fn note_discovery(&mut self, slot: usize, sent: bool) {
        if !sent || slot == CONTROL || core::mem::replace(&mut self.slots[slot].neighbor_waiting, true) {
            return;
        }
        // Entries whose slot stopped waiting stay until the next ARP/NDP frame drains the list;
        // compact it before it outgrows the slots, so it stays bounded without one.
        if self.neighbor_waiting.len() >= 2 * self.slots.len() {
            let slots = &self.slots;
            self.neighbor_waiting.retain(|&s| slots[s].neighbor_waiting);
        }
        self.neighbor_waiting.push(slot);
    }

    /// Sends what slot `slot` has to send, then updates its keys, timer and waiters.
    pub fn egress(&mut self, slot: usize) {
        let now = smol_now();
        loop {
            let mut device = Ingress { frame: None, tx: &mut *self.tx, sent_discovery: false, offload: self.offload };
            let result = self.iface.poll_egress(now, &mut device, &mut self.slots[slot].set);
            let sent_discovery = device.sent_discovery;
            self.note_discovery(slot, sent_discovery);
            if result == smoltcp::iface::PollResult::None {
                break;
            }
            if self.tx.reclaim() == 0 {
                // Every transmit buffer is in flight: tell the device now (not only when the
                // stack's lock is released) so that it can free some.
                self.tx.flush();
                break;
            }
        }
        self.settle(slot, now);
    }

    /// After smoltcp touched slot `slot`: re-key it, re-arm its timer, queue its wake-up.
    fn settle(&mut self, slot: usize, now: SmolInstant) {
        if slot == CONTROL {
            self.dhcp_events();
        }
        self.rekey(slot);
        let next = self.iface.poll_at(now, &self.slots[slot].set).map(|at| at.total_micros());
        // smoltcp silences a socket whose next hop has no link-layer address yet for exactly
        // one second from now (the ARP/NDP request may have gone out for another socket): it
        // is polled again as soon as a discovery frame comes in. (A TCP retransmission timer
        // that happens to land on the same instant only costs one extra poll.)
        if next == Some(now.total_micros() + 1_000_000) {
            self.note_discovery(slot, true);
        }
        let entry = &mut self.slots[slot];
        if entry.timer != next {
            if let Some(old) = entry.timer.take() {
                self.timers.remove(&(old, slot));
            }
            if let Some(at) = next {
                self.timers.insert((at, slot));
                self.slots[slot].timer = Some(at);
            }
        }
        // Always queued (an `Arc` clone): looking at the socket's wait queue here could
        // deadlock, since a caller blocked on that queue runs its condition (and so this
        // egress) with the queue's lock held.
        let shared = self.slots[slot].shared.clone();
        self.wakes.push(shared);
    }

    fn run_timers(&mut self) {
        NicCounters::bump(&self.counters.timer_runs);
        let now = smol_now();
        // Take the due slots first, then poll each once: a slot that is due again at once
        // (it could not send: every transmit buffer in flight) waits for the next run, after
        // the device was told about what is queued, instead of spinning here.
        let mut due = core::mem::take(&mut self.due);
        while let Some(&(at, slot)) = self.timers.first() {
            if at > now.total_micros() {
                break;
            }
            self.timers.pop_first();
            self.slots[slot].timer = None;
            due.push(slot);
        }
        for &slot in &due {
            self.egress(slot);
        }
        due.clear();
        self.due = due;
        // `armed` stays what the network thread is waiting for: it recomputes it itself
        // before sleeping again. (Resetting it here made every run look like a new, earlier
        // timer, kicked the thread again at once, and spun it whenever a timer was pending.)
    }

    fn apply_ipv4(&mut self, config: Ipv4Config) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|cidr| !matches!(cidr, IpCidr::Ipv4(_)));
            if let Some(address) = config.address {
                let _ = addrs.push(IpCidr::Ipv4(address));
            }
        });
        match config.gateway {
            Some(gateway) => {
                let _ = self.iface.routes_mut().add_default_ipv4_route(gateway);
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        self.ipv4 = config;
        self.ipv4_changed = true;
    }

    fn dhcp_events(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = self.slots[CONTROL].set.get_mut::<dhcpv4::Socket<'static>>(handle).poll();
        match event {
            Some(dhcpv4::Event::Configured(config)) => {
                let update = Ipv4Config { address: Some(config.address), gateway: config.router, dns: config.dns_servers.first().copied() };
                log::info!("net: DHCP lease {} gateway {:?}", config.address, config.router);
                self.apply_ipv4(update);
            }
            // smoltcp reports Deconfigured once at start too: only a lease held is lost.
            Some(dhcpv4::Event::Deconfigured) if self.ipv4.address.is_some() => {
                log::info!("net: DHCP lease lost");
                self.apply_ipv4(Ipv4Config::default());
            }
            Some(dhcpv4::Event::Deconfigured) => {}
            None => {}
        }
    }
}
