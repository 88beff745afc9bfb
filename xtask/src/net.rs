//! The guest's network card: `./x run --net user|tap --forward PROTO:[127.0.0.1:]HOSTPORT:GUESTPORT`
//! and [`crate::qemu::VmConfig::net`] for the tests and benchmarks.
//!
//! One virtio-net device, `net0`, on one of two QEMU back ends:
//! - [`NetBackend::User`]: QEMU's user-mode network (slirp). The guest is 10.0.2.15 by DHCP
//!   (libos's default `ip=dhcp` when a NIC is present); host ports reach it through `hostfwd`
//!   rules bound to loopback only. Restricted by default (`restrict=on`): slirp routes nothing
//!   beyond itself, so no packet can leave the machine; DHCP and forwards still work, but slirp
//!   then leaves the router and DNS options out of its DHCP offer (the guest gets no gateway).
//!   [`NetConfig::user_open`] (`./x run --net user-open`) lifts the restriction: the offer
//!   names gateway 10.0.2.2, and the guest could reach any address through the host.
//! - [`NetBackend::Tap`]: a tap device that already exists where QEMU runs, i.e. inside a
//!   namespace made by [`crate::netns::Netns`] (QEMU started through its launcher).
//!
//! The device follows the machine's virtio transport like virtio-fs does
//! ([`crate::qemu::VirtioTransport`]): `virtio-net-pci` with `disable-legacy=on` on PCI (libos
//! probes only the modern-only PCI ids, 0x1040 + device id, which QEMU gives a virtio-net
//! only without its legacy interface), `virtio-net-device` on virtio-mmio, forced to version 2
//! unless the legacy transport was asked for.

use crate::Result;
use crate::qemu::VirtioTransport;

/// The MAC address of the guest's NIC (QEMU's usual default, written out so tests know it).
pub const GUEST_MAC: &str = "52:54:00:12:34:56";

/// The transport protocol of a host forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The name in `--forward` and in QEMU's `hostfwd`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A host port forwarded to a guest port (user network only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address QEMU listens on: always a loopback address.
    pub host_address: String,
    /// The host port.
    pub host_port: u16,
    /// The guest port it reaches.
    pub guest_port: u16,
}

impl Forward {
    /// A forward of `protocol` from `127.0.0.1:host_port` to the guest's `guest_port`.
    pub fn new(protocol: Protocol, host_port: u16, guest_port: u16) -> Forward {
        Forward { protocol, host_address: "127.0.0.1".into(), host_port, guest_port }
    }

    /// Parses `tcp:HOSTPORT:GUESTPORT` or `tcp:127.0.0.1:HOSTPORT:GUESTPORT` (or `udp:`). The
    /// host address must be a loopback address: a forward must not open the guest to the
    /// network.
    pub fn parse(text: &str) -> Result<Forward> {
        let usage = || format!("bad --forward `{text}` (expected tcp:HOSTPORT:GUESTPORT or udp:127.0.0.1:HOSTPORT:GUESTPORT)");
        let parts: Vec<&str> = text.split(':').collect();
        let (protocol, address, host, guest) = match parts.as_slice() {
            [protocol, host, guest] => (*protocol, "127.0.0.1", *host, *guest),
            [protocol, address, host, guest] => (*protocol, *address, *host, *guest),
            _ => return Err(usage().into()),
        };
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return Err(usage().into()),
        };
        let loopback = address.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback());
        if !loopback {
            return Err(format!("--forward `{text}`: the host address must be a loopback address such as 127.0.0.1 (forwards stay on this machine)").into());
        }
        let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("{}: `{p}` is not a port (1-65535)", usage()));
        Ok(Forward { protocol, host_address: address.into(), host_port: port(host)?, guest_port: port(guest)? })
    }

    /// QEMU's `hostfwd=` value (`tcp:127.0.0.1:H-:G`: the guest address is slirp's DHCP one).
    pub fn hostfwd(&self) -> String {
        format!("{}:{}:{}-:{}", self.protocol.name(), self.host_address, self.host_port, self.guest_port)
    }
}

/// Where the guest's NIC is plugged in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// QEMU's user-mode network (slirp), with host forwards.
    User {
        /// Host ports forwarded to the guest.
        forwards: Vec<Forward>,
        /// `restrict=on`: nothing routed beyond slirp (and no gateway in the DHCP offer).
        restrict: bool,
    },
    /// An existing tap device (inside the namespace QEMU runs in).
    Tap {
        /// The tap's name.
        ifname: String,
    },
}

/// The guest's network card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Its back end.
    pub backend: NetBackend,
    /// Its MAC address.
    pub mac: String,
}

impl NetConfig {
    /// A NIC on QEMU's restricted user network with `forwards` (no gateway by DHCP).
    pub fn user(forwards: Vec<Forward>) -> NetConfig {
        NetConfig { backend: NetBackend::User { forwards, restrict: true }, mac: GUEST_MAC.into() }
    }

    /// A NIC on QEMU's unrestricted user network: DHCP offers gateway 10.0.2.2 (and DNS
    /// 10.0.2.3), through which the guest could reach any address the host can. Use only with
    /// guests that talk to slirp and forwarded ports alone.
    pub fn user_open(forwards: Vec<Forward>) -> NetConfig {
        NetConfig { backend: NetBackend::User { forwards, restrict: false }, mac: GUEST_MAC.into() }
    }

    /// A NIC on the tap `ifname`.
    pub fn tap(ifname: &str) -> NetConfig {
        NetConfig { backend: NetBackend::Tap { ifname: ifname.into() }, mac: GUEST_MAC.into() }
    }

    /// The QEMU arguments of the back end and the device on `transport`.
    pub fn qemu_args(&self, transport: VirtioTransport) -> Vec<String> {
        let netdev = match &self.backend {
            NetBackend::User { forwards, restrict } => {
                let mut netdev = format!("user,id=net0,restrict={}", if *restrict { "on" } else { "off" });
                for forward in forwards {
                    netdev.push_str(",hostfwd=");
                    netdev.push_str(&forward.hostfwd());
                }
                netdev
            }
            NetBackend::Tap { ifname } => format!("tap,id=net0,ifname={ifname},script=no,downscript=no"),
        };
        let mut args = vec!["-netdev".to_string(), netdev];
        let device = match transport {
            VirtioTransport::Pci => format!("virtio-net-pci,netdev=net0,mac={},disable-legacy=on", self.mac),
            VirtioTransport::Mmio => {
                // virtio-mmio version 2 (modern), as for virtio-fs; QEMU's default is version 1.
                args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
                format!("virtio-net-device,netdev=net0,mac={}", self.mac)
            }
            VirtioTransport::MmioLegacy => format!("virtio-net-device,netdev=net0,mac={}", self.mac),
        };
        args.extend(["-device".into(), device]);
        args
    }
}

/// What `./x run --net` asks for, before a namespace exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetMode {
    /// `--net user`.
    User,
    /// `--net user-open`.
    UserOpen,
    /// `--net tap`.
    Tap,
}

impl std::str::FromStr for NetMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<NetMode, String> {
        match s {
            "user" => Ok(NetMode::User),
            "user-open" => Ok(NetMode::UserOpen),
            "tap" => Ok(NetMode::Tap),
            other => Err(format!("unknown network `{other}` (expected user, user-open or tap)")),
        }
    }
}

/// The network mode of `./x run`'s `--net` and `--forward` options: forwards imply the user
/// network and make no sense on a tap (the tap network is reached from its namespace).
pub fn resolve_mode(mode: Option<NetMode>, forwards: &[Forward]) -> Result<Option<NetMode>> {
    match (mode, forwards.is_empty()) {
        (Some(NetMode::Tap), false) => {
            Err("--forward works with --net user only; with --net tap reach the guest from the namespace `./x` prints".into())
        }
        (None, false) => Ok(Some(NetMode::User)),
        (mode, _) => Ok(mode),
    }
}

/// The kernel options with the guest's static tap address added, unless the user set `ip=`.
pub fn with_tap_address(options: &str) -> String {
    if options.split_whitespace().any(|w| w.starts_with("ip=")) {
        return options.to_string();
    }
    let options = options.trim();
    if options.is_empty() { crate::netns::GUEST_IP_OPTION.to_string() } else { format!("{options} {}", crate::netns::GUEST_IP_OPTION) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_and_stay_on_loopback() {
        assert_eq!(Forward::parse("tcp:8080:80").unwrap(), Forward::new(Protocol::Tcp, 8080, 80));
        assert_eq!(Forward::parse("udp:127.0.0.1:5353:53").unwrap(), Forward::new(Protocol::Udp, 5353, 53));
        let other_loopback = Forward::parse("tcp:127.0.0.2:1:2").unwrap();
        assert_eq!(other_loopback.hostfwd(), "tcp:127.0.0.2:1-:2");
        assert!(Forward::parse("tcp:0.0.0.0:80:80").unwrap_err().to_string().contains("loopback"));
        assert!(Forward::parse("tcp:10.1.2.3:80:80").unwrap_err().to_string().contains("loopback"));
        assert!(Forward::parse("sctp:1:2").is_err());
        assert!(Forward::parse("tcp:80").is_err());
        assert!(Forward::parse("tcp:0:80").unwrap_err().to_string().contains("not a port"));
        assert!(Forward::parse("tcp:70000:80").is_err());
        assert!(Forward::parse("tcp:a:b:c:d").is_err());
    }

    #[test]
    fn user_network_is_restricted_and_forwards_loopback_ports() {
        let config = NetConfig::user(vec![Forward::new(Protocol::Tcp, 8080, 80), Forward::new(Protocol::Udp, 7007, 7)]);
        let args = config.qemu_args(VirtioTransport::Pci).join(" ");
        assert_eq!(
            args,
            "-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:7007-:7 \
             -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,disable-legacy=on"
        );
    }

    #[test]
    fn an_open_user_network_is_asked_for_explicitly() {
        let open = NetConfig::user_open(Vec::new()).qemu_args(VirtioTransport::Mmio).join(" ");
        assert!(open.starts_with("-netdev user,id=net0,restrict=off "), "{open}");
    }

    #[test]
    fn device_follows_the_transport() {
        let tap = NetConfig::tap("tap0");
        let mmio = tap.qemu_args(VirtioTransport::Mmio).join(" ");
        assert_eq!(
            mmio,
            "-netdev tap,id=net0,ifname=tap0,script=no,downscript=no -global virtio-mmio.force-legacy=false \
             -device virtio-net-device,netdev=net0,mac=52:54:00:12:34:56"
        );
        let legacy = tap.qemu_args(VirtioTransport::MmioLegacy).join(" ");
        assert!(legacy.ends_with("-device virtio-net-device,netdev=net0,mac=52:54:00:12:34:56") && !legacy.contains("force-legacy"), "{legacy}");
    }

    #[test]
    fn modes_resolve() {
        let forward = [Forward::new(Protocol::Tcp, 1, 2)];
        assert_eq!("user".parse::<NetMode>(), Ok(NetMode::User));
        assert_eq!("user-open".parse::<NetMode>(), Ok(NetMode::UserOpen));
        assert_eq!(resolve_mode(Some(NetMode::UserOpen), &forward).unwrap(), Some(NetMode::UserOpen));
        assert!("bridge".parse::<NetMode>().is_err());
        assert_eq!(resolve_mode(None, &[]).unwrap(), None);
        assert_eq!(resolve_mode(None, &forward).unwrap(), Some(NetMode::User));
        assert_eq!(resolve_mode(Some(NetMode::User), &forward).unwrap(), Some(NetMode::User));
        assert!(resolve_mode(Some(NetMode::Tap), &forward).is_err());
        assert_eq!(resolve_mode(Some(NetMode::Tap), &[]).unwrap(), Some(NetMode::Tap));
    }

    #[test]
    fn tap_address_is_added_unless_given() {
        assert_eq!(with_tap_address(""), "ip=10.0.2.15/24,gw=10.0.2.1");
        assert_eq!(with_tap_address("loglevel=info"), "loglevel=info ip=10.0.2.15/24,gw=10.0.2.1");
        assert_eq!(with_tap_address("ip=10.0.2.20/24 loglevel=info"), "ip=10.0.2.20/24 loglevel=info");
    }
}
