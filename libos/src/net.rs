//! Networking (feature `net`), shaped like `std::net`: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`], [`SocketAddr`], plus [`Poller`] to wait on many sockets at once and
//! [`interfaces`] for the NIC's addresses and counters. The stack is `libos-net` (smoltcp
//! behind libos's own demultiplexer; its crate docs say what it can and cannot do).
//!
//! At boot libos brings up the first virtio-net device with the kernel options `ip=` (default
//! `dhcp`), `ip6=` and `tcp_buffer=`, and, in images with a scheduler, starts the thread `net`
//! that runs TCP's timers (it sleeps until the next one is due: no periodic tick). Without a
//! NIC every socket call fails with `ENETDOWN`.
//!
//! ```ignore
//! use libos::net::{TcpListener, SocketAddr};
//! let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], 80)))?;
//! let (stream, peer) = listener.accept()?;
//! stream.write_all(b"hello\n")?;
//! ```

pub use libos_net::socket::{CONNECT_TIMEOUT, DEFAULT_BACKLOG};
pub use libos_net::{
    Event, InterfaceInfo, Interest, IpAddr, Ipv4Addr, Ipv6Addr, NicStats, Poller, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6, Source,
    TcpListener, TcpStream, UdpSocket, default_stack, interfaces, set_signal_hooks, wait_for_address, wait_for_echo_requests,
};

/// The stack crate itself (interfaces for research variants, the host-test wire).
pub use libos_net as stack;

/// Brings the network up from the kernel options (boot calls this once, after the scheduler
/// started). Errors: a bad option value, as a message for the boot error.
#[cfg(target_os = "none")]
pub(crate) fn start(options: &[(&'static str, alloc::string::String)]) -> Result<(), alloc::string::String> {
    let mut net = libos_net::NetOptions::default();
    for (name, value) in options {
        let bad = |why: &str| alloc::format!("kernel option `{name}={value}`: {why}");
        match *name {
            "ip" => net.ipv4 = libos_net::config::parse_ip(value).map_err(bad)?,
            "ip6" => net.ipv6 = Some(libos_net::config::parse_ip6(value).map_err(bad)?),
            _ => net.tcp_buffer = Some(libos_net::config::parse_tcp_buffer(value).map_err(bad)?),
        }
    }
    let stack = libos_net::probe(&libos_core::hal::platform().devices(), &net);
    if stack.is_none() {
        log::info!("net: no network device; socket calls fail with ENETDOWN");
        return Ok(());
    }
    #[cfg(any(feature = "sched-coop", feature = "sched-preempt"))]
    if let Err(e) = libos_sched::thread::Builder::new().name("net").spawn(libos_net::run_network_thread) {
        log::error!("net: cannot start the network thread ({e}); blocked callers run TCP timers themselves");
    }
    #[cfg(feature = "vfs")]
    publish_dns_server(&net);
    Ok(())
}

/// Writes `/etc/resolv.conf` for the C library's resolver: now for a static `ip=...,dns=`, or
/// from a thread that waits (with no timer) for the DHCP lease.
#[cfg(all(target_os = "none", feature = "vfs"))]
fn publish_dns_server(net: &libos_net::NetOptions) {
    let dns_now = || interfaces().first().and_then(|i| i.dns);
    if let Some(server) = dns_now() {
        crate::etc::write_resolv_conf(server);
        return;
    }
    if !matches!(net.ipv4, libos_net::stack::Ipv4Setup::Dhcp) {
        return;
    }
    #[cfg(any(feature = "sched-coop", feature = "sched-preempt"))]
    let _ = libos_sched::thread::Builder::new().name("resolv").spawn(move || {
        if libos_net::wait_for_address_until(None).is_ok()
            && let Some(server) = dns_now()
        {
            crate::etc::write_resolv_conf(server);
        }
    });
}
