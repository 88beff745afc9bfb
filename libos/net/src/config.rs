//! The kernel command line's network options, parsed (pure, host-tested):
//! `ip=dhcp|none|ADDR/PREFIX[,gw=ADDR][,dns=ADDR]`, `ip6=ADDR/PREFIX`, `tcp_buffer=BYTES`.

use crate::stack::{Ipv4Config, Ipv4Setup};
use core::net::{Ipv4Addr, Ipv6Addr};
use smoltcp::wire::Ipv4Cidr;

/// The network options of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// How IPv4 is configured (default: DHCP).
    pub ipv4: Ipv4Setup,
    /// A static IPv6 address besides the link-local one.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// TCP buffer size per direction (default [`crate::stack::DEFAULT_TCP_BUFFER`]).
    pub tcp_buffer: Option<usize>,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions { ipv4: Ipv4Setup::Dhcp, ipv6: None, tcp_buffer: None }
    }
}

/// Parses the value of `ip=`.
pub fn parse_ip(value: &str) -> Result<Ipv4Setup, &'static str> {
    match value {
        "dhcp" => return Ok(Ipv4Setup::Dhcp),
        "none" | "off" => return Ok(Ipv4Setup::None),
        _ => {}
    }
    let mut parts = value.split(',');
    let (address, prefix) = parts.next().and_then(|a| a.split_once('/')).ok_or("`ip=` wants dhcp, none or ADDR/PREFIX[,gw=ADDR][,dns=ADDR]")?;
    let address: Ipv4Addr = address.parse().map_err(|_| "`ip=`: not an IPv4 address")?;
    let prefix: u8 = prefix.parse().ok().filter(|&p| p <= 32).ok_or("`ip=`: the prefix must be 0..=32")?;
    let mut config = Ipv4Config { address: Some(Ipv4Cidr::new(address, prefix)), gateway: None, dns: None };
    for part in parts {
        let (key, value) = part.split_once('=').ok_or("`ip=`: expected gw=ADDR or dns=ADDR after the address")?;
        let value: Ipv4Addr = value.parse().map_err(|_| "`ip=`: gw= and dns= want IPv4 addresses")?;
        match key {
            "gw" => config.gateway = Some(value),
            "dns" => config.dns = Some(value),
            _ => return Err("`ip=`: unknown part (gw= and dns= are known)"),
        }
    }
    Ok(Ipv4Setup::Static(config))
}

/// Parses the value of `ip6=`.
pub fn parse_ip6(value: &str) -> Result<(Ipv6Addr, u8), &'static str> {
    let (address, prefix) = value.split_once('/').ok_or("`ip6=` wants ADDR/PREFIX")?;
    let address: Ipv6Addr = address.parse().map_err(|_| "`ip6=`: not an IPv6 address")?;
    let prefix: u8 = prefix.parse().ok().filter(|&p| p <= 128).ok_or("`ip6=`: the prefix must be 0..=128")?;
    Ok((address, prefix))
}

/// Parses the value of `tcp_buffer=` (bytes, 4 KiB to 16 MiB; `K`/`M` suffixes allowed).
pub fn parse_tcp_buffer(value: &str) -> Result<usize, &'static str> {
    let (digits, scale) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 1024),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    let n: usize = digits.parse().map_err(|_| "`tcp_buffer=` wants a size in bytes (K and M suffixes allowed)")?;
    n.checked_mul(scale).filter(|b| (4096..=16 << 20).contains(b)).ok_or("`tcp_buffer=` must be between 4K and 16M")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("dhcp"), Ok(Ipv4Setup::Dhcp));
        assert_eq!(parse_ip("none"), Ok(Ipv4Setup::None));
        let Ok(Ipv4Setup::Static(c)) = parse_ip("10.0.2.15/24,gw=10.0.2.1,dns=10.0.2.3") else { panic!() };
        assert_eq!(c.address, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24)));
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 0, 2, 1)));
        assert_eq!(c.dns, Some(Ipv4Addr::new(10, 0, 2, 3)));
        for bad in ["", "10.0.2.15", "10.0.2.15/33", "x/24", "10.0.2.15/24,gw=x", "10.0.2.15/24,via=1.2.3.4", "10.0.2.15/24,gw"] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip6_and_buffer() {
        assert_eq!(parse_ip6("fd00::2/64"), Ok(("fd00::2".parse().unwrap(), 64)));
        assert!(parse_ip6("fd00::2").is_err() && parse_ip6("fd00::2/129").is_err());
        assert_eq!(parse_tcp_buffer("256K"), Ok(256 * 1024));
        assert_eq!(parse_tcp_buffer("4096"), Ok(4096));
        assert!(parse_tcp_buffer("1K").is_err() && parse_tcp_buffer("32M").is_err() && parse_tcp_buffer("lots").is_err());
    }
}
