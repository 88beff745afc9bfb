//! # libos-net: the network stack of libos
//!
//! A virtio-net driver, smoltcp's TCP/IP (IPv4 and IPv6, TCP, UDP, ARP/NDP, DHCPv4, ICMP echo
//! answered by the stack) and sockets shaped like `std::net`:
//!
//! - [`virtio_net::VirtioNet`]: the NIC on `libos-virtio` (virtio-mmio v1/v2, modern PCI),
//!   interrupt-driven, zero-copy receive, one notification per burst.
//! - [`stack::Stack`]: the interface and every socket, with an O(1) demultiplexer in front of
//!   smoltcp ([`flow`]): smoltcp itself walks every socket of a set per packet, so each socket
//!   gets a set of its own and only the right one is polled (see `stack`'s docs).
//! - [`TcpListener`], [`TcpStream`], [`UdpSocket`]: blocking with timeouts or non-blocking;
//!   [`Poller`]: readiness of many sockets at once, O(ready) per wait.
//! - [`config`]: the kernel options `ip=`, `ip6=`, `tcp_buffer=`.
//!
//! Users: the `libos` crate (feature `net`) probes the NIC at boot ([`probe`]), starts the
//! network thread (TCP timers) when there is a scheduler, and re-exports this crate as
//! `libos::net`; posix-shim will map socket calls onto it.
//!
//! ## Why smoltcp, and what it costs
//! smoltcp 0.14 is the one mature `no_std` TCP/IP stack in Rust (Reno, window scaling,
//! timestamps, SACK negotiation, DHCP, IPv6/NDP); lwIP would mean C and a second allocator.
//! Its limits, which apply here: no silly-window avoidance, no path-MTU discovery, a few
//! out-of-order segments per connection (8 configured), no SACK-based retransmission. Not
//! enabled here: IP fragmentation (a UDP datagram must fit one frame: `EMSGSIZE` beyond 1472
//! bytes over IPv4), multicast, SLAAC. Checksums are offloaded to the device when it offers `CSUM` and
//! `GUEST_CSUM` (a tap back end does; QEMU's user network does not, and smoltcp computes them),
//! and so is TCP segmentation in both directions when it offers the TSO features (smoltcp's
//! `segmentation-offload`; IPv4 only on transmit, see [`virtio_net`]).
//!
//! Unsafe code lives only in [`virtio_net`] (buffers published to the device).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod checksum;
pub mod config;
pub mod flow;
pub mod hooks;
pub mod nic;
pub mod poller;
pub mod socket;
pub mod stack;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[allow(unsafe_code)]
pub mod virtio_net;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
pub use config::NetOptions;
pub use hooks::set_signal_hooks;
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::time::Duration;
use libos_core::time::Instant;
use libos_core::{Errno, Result};
pub use nic::NicStats;
pub use poller::{Event, Interest, Poller, Source};
pub use socket::{Shutdown, TcpListener, TcpStream, UdpSocket};
use stack::Stack;

static DEFAULT: libos_core::sync::Once<Option<&'static Stack>> = libos_core::sync::Once::new();

/// The machine's network interface, or `ENETDOWN` when it has none (or [`probe`] did not run).
pub fn default_stack() -> Result<&'static Stack> {
    DEFAULT.get().copied().flatten().ok_or(Errno::ENETDOWN)
}

/// Installs `stack` as the default interface (boot does this; host tests too). Later calls
/// are ignored.
pub fn set_default_stack(stack: Option<&'static Stack>) {
    DEFAULT.call_once(|| stack);
}

/// Finds the first virtio-net device among `devices`, brings it up with `options`, routes its
/// interrupt, and makes it the default interface. `None` when there is no NIC (or it fails to
/// initialise: logged).
pub fn probe(devices: &libos_core::device::Devices, options: &NetOptions) -> Option<&'static Stack> {
    let stack = libos_virtio::probe_all(devices, virtio_net::DEVICE_ID).into_iter().find_map(|(transport, irq)| bring_up(transport, irq, options));
    set_default_stack(stack);
    stack
}

/// What the interrupt handler needs: the stack and the transport to acknowledge.
struct NicInterrupt {
    stack: &'static Stack,
    transport: Arc<dyn libos_virtio::Transport>,
}

/// The NIC interrupt handler (`data`: a leaked [`NicInterrupt`]).
fn nic_interrupt(data: usize) {
    // SAFETY: `data` came from `Box::leak` of a `NicInterrupt` that is never freed.
    #[allow(unsafe_code)]
    let nic = unsafe { &*(data as *const NicInterrupt) };
    nic.stack.handle_interrupt(|| nic.transport.acknowledge_interrupt());
}

fn bring_up(transport: Box<dyn libos_virtio::Transport>, irq: Option<u32>, options: &NetOptions) -> Option<&'static Stack> {
    let describe = transport.describe();
    // MSI-X must be bound before the queues are set up.
    let irq = irq.filter(|&irq| transport.prepare_interrupt(irq).is_ok());
    let counters = Arc::new(nic::NicCounters::default());
    let device = match virtio_net::VirtioNet::new(transport, counters.clone()) {
        Ok(device) => device,
        Err(e) => {
            log::error!("virtio-net at {describe}: cannot initialise the device: {e}");
            return None;
        }
    };
    let transport = device.transport.clone();
    let mac = device.mac;
    let offload = device.offload;
    let stack = Stack::new(mac, Box::new(device.rx), Box::new(device.tx), counters, options.ipv4, options.ipv6, describe.clone(), offload);
    if let Some(bytes) = options.tcp_buffer {
        stack.with(|inner| inner.tcp_buffer = bytes);
    }
    let stack: &'static Stack = Box::leak(Box::new(stack));
    let routed = irq.is_some_and(|irq| {
        let data = Box::leak(Box::new(NicInterrupt { stack, transport: transport.clone() })) as *const NicInterrupt as usize;
        match libos_core::device::set_interrupt_handler(irq, nic_interrupt, data) {
            Ok(()) => transport.enable_interrupt(irq).is_ok(),
            Err(_) => false,
        }
    });
    if !routed {
        stack.set_polling();
        log::warn!("virtio-net at {describe}: no routable interrupt; the stack polls the device every millisecond");
    }
    // Frames that came in before the handler was there.
    stack.poll_receive();
    let m = mac;
    log::info!(
        "net: virtio-net at {describe}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {}",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        if routed { "interrupt-driven" } else { "polling" }
    );
    log::debug!(
        "net: checksum offload {}, TCP segmentation offload {}",
        if offload.checksum { "on" } else { "off (the device does not offer it)" },
        if offload.segmentation { "on (IPv4)" } else { "off" }
    );
    Some(stack)
}

/// One network interface, as [`interfaces`] reports it.
#[derive(Clone, Debug)]
pub struct InterfaceInfo {
    /// `eth0`.
    pub name: String,
    /// The MAC address.
    pub mac: [u8; 6],
    /// Addresses with their prefix lengths (IPv4 first when configured, then IPv6).
    pub addresses: Vec<(IpAddr, u8)>,
    /// The IPv4 default gateway.
    pub gateway: Option<IpAddr>,
    /// The DNS server DHCP or `ip=` named.
    pub dns: Option<IpAddr>,
    /// Where the NIC sits.
    pub device: String,
    /// Counters.
    pub stats: NicStats,
}

/// The machine's network interfaces (empty without a NIC).
pub fn interfaces() -> Vec<InterfaceInfo> {
    let Ok(stack) = default_stack() else { return Vec::new() };
    let (mut addresses, ipv4) = {
        let inner = stack.lock();
        let addresses: Vec<(IpAddr, u8)> = inner.iface.ip_addrs().iter().map(|c| (socket::ip_from_smol(c.address()), c.prefix_len())).collect();
        (addresses, inner.ipv4)
    };
    addresses.sort_by_key(|(a, _)| a.is_ipv6());
    alloc::vec![InterfaceInfo {
        name: String::from("eth0"),
        mac: stack.mac,
        addresses,
        gateway: ipv4.gateway.map(IpAddr::V4),
        dns: ipv4.dns.map(IpAddr::V4),
        device: stack.describe.clone(),
        stats: stack.counters.snapshot(),
    }]
}

/// Waits up to `timeout` until the interface has an IPv4 address (a DHCP lease). Errors:
/// `ENETDOWN` without a NIC, `ETIMEDOUT`.
pub fn wait_for_address(timeout: Duration) -> Result<()> {
    wait_for_address_until(Some(Instant::now() + timeout))
}

/// As [`wait_for_address`], until `deadline` (`None`: for as long as it takes, setting no
/// timer of its own).
pub fn wait_for_address_until(deadline: Option<Instant>) -> Result<()> {
    let stack = default_stack()?;
    let has_address = || stack.lock().ipv4.address.is_some();
    stack.wait_for(&stack.address_waiters, deadline, has_address);
    if stack.lock().ipv4.address.is_some() { Ok(()) } else { Err(Errno::ETIMEDOUT) }
}

/// Waits until the interface has received at least `count` ICMP echo requests in all (see
/// [`NicStats::icmp_echo_requests`]) or `deadline` passes; returns the count. Sets no timer
/// of its own, so under `-icount sleep=off` a benchmark's idle time costs no virtual time.
/// Errors: `ENETDOWN` without a NIC.
pub fn wait_for_echo_requests(count: u64, deadline: Option<Instant>) -> Result<u64> {
    let stack = default_stack()?;
    use core::sync::atomic::Ordering;
    let seen = || stack.counters.icmp_echo_requests.load(Ordering::Relaxed);
    stack.echo_target.store(count, Ordering::Relaxed);
    stack.wait_for(&stack.echo_waiters, deadline, || seen() >= count);
    stack.echo_target.store(u64::MAX, Ordering::Relaxed);
    Ok(seen())
}

/// Runs the network thread's loop (TCP timers) on the calling thread; `libos` spawns a thread
/// for it when the image has a scheduler. Returns at once without a NIC.
pub fn run_network_thread() {
    if let Ok(stack) = default_stack() {
        stack.timer_loop();
    }
}

#[cfg(test)]
mod tests;
